"""Two Ray Train workers, Accelerate on gloo: gradients are synchronised, for every model family."""

import json

import pytest

from ..conftest import ROOT


@pytest.mark.parametrize("job", ["quickstart.yaml", "mnist-cvae.yaml", "mnist-ddpm-cond.yaml"])
def test_two_workers_keep_identical_parameters(tmp_path, job, cli_on_one_ray):
    out = tmp_path / "out"
    sets = [
        "data.source=digits",
        "data.resolution=8",
        "model.width=16",
        "train.num_workers=2",
        "train.batch_size=32",
        "train.steps=10",
        "train.log_every=5",
        "train.checkpoint_every=5",
    ]
    proc = cli_on_one_ray(
        "train", str(ROOT / "jobs" / job), "--out", str(out), *[a for s in sets for a in ("--set", s)]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "on 2 worker(s)" in proc.stdout
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    # world size and spread come from torch.distributed itself, not from Accelerate's view:
    # if Accelerate ran each worker alone, both ranks would still be counted and would drift apart.
    assert state["world_size"] == 2
    assert state["replica_max_diff"] == 0.0
    assert state["step"] == 10
