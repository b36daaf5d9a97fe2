"""Two Ray Train workers, Accelerate on gloo: gradients are synchronised."""

import json

from ..conftest import QUICKSTART, run_cli


def test_two_workers_keep_identical_parameters(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "train", str(QUICKSTART), "--out", str(out),
        "--set", "data.source=digits", "--set", "data.resolution=8",
        "--set", "model.width=16", "--set", "train.num_workers=2", "--set", "train.batch_size=32",
        "--set", "train.steps=10", "--set", "train.log_every=5", "--set", "train.checkpoint_every=5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "on 2 worker(s)" in proc.stdout
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    # world size and spread come from torch.distributed itself, not from Accelerate's view:
    # if Accelerate ran each worker alone, both ranks would still be counted and would drift apart.
    assert state["world_size"] == 2
    assert state["replica_max_diff"] == 0.0
    assert state["step"] == 10
