"""Every job in jobs/ runs end to end through the CLI on a real embedded Ray, at a tiny size."""

import json
import tarfile

import pyarrow.parquet as pq
import pytest

from synth.spec import load_job

from ..conftest import ROOT, run_cli

JOBS = sorted(p for p in (ROOT / "jobs").glob("*.yaml") if p.name != "quickstart.yaml")  # quickstart: test_run_cli
TINY = ["train.steps=6", "train.log_every=3", "train.checkpoint_every=3", "data.limit=300", "generate.count=60",
        "generate.shard_size=30", "evaluate.num_samples=30", "evaluate.inception=false",
        "evaluate.classifier_epochs=1"]  # fmt: skip


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_job_runs_end_to_end(tmp_path, job):
    out = tmp_path / "out"
    args = [a for s in TINY for a in ("--set", s)]
    proc = run_cli("run", str(job), "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generated: 60 images in 2 shards" in proc.stdout and "report:" in proc.stdout
    assert len(pq.read_table(out / "manifest.parquet")) == 60
    report = json.loads((out / "report.json").read_text())
    spec = load_job(job, TINY)
    assert report["job"]["model"]["name"] == spec.model.name and report["train"]["step"] == 6
    with tarfile.open(out / "shards" / f"{spec.output.name}-000000.tar") as tar:
        meta = json.loads(tar.extractfile(next(n for n in tar.getnames() if n.endswith(".json"))).read())
    assert meta["model"] == spec.model.name
    if spec.model.name.startswith("ddpm"):  # the diffusion settings that shaped the pixels are recorded
        g = spec.generate
        assert meta["sampling"] == {"sampler": g.sampler, "steps": g.steps, "eta": g.eta, "guidance": g.guidance}
    verified = run_cli("verify", str(out))
    assert verified.returncode == 0 and "verify: ok, 2 shards, 60 samples" in verified.stdout, verified.stderr
