"""Every job in jobs/ runs end to end through the CLI on a real embedded Ray, at a tiny size."""

import json
import tarfile

import pyarrow.parquet as pq
import pytest

from synth.spec import load_job

from ..conftest import ROOT

JOBS = sorted(p for p in (ROOT / "jobs").glob("*.yaml") if p.name != "quickstart.yaml")  # quickstart: test_run_cli


def covered_by(job):
    """The earlier job with the same model and data source, whose tiny run covers this one's code."""
    spec = load_job(job, [])
    for other in JOBS[: JOBS.index(job)]:
        theirs = load_job(other, [])
        if (theirs.model.name, theirs.data.source) == (spec.model.name, spec.data.source):
            return other
    return None


RUN = [j for j in JOBS if covered_by(j) is None]
# CAS is left to test_run_cli: it trains classifiers on the images, whatever the family made them
TINY = [
    "train.steps=6",
    "train.log_every=3",
    "train.checkpoint_every=3",
    "data.limit=300",
    "generate.count=60",
    "generate.shard_size=30",
    "evaluate.num_samples=30",
    "evaluate.inception=false",
    "evaluate.classifier_epochs=1",
    "evaluate.cas=false",
]


@pytest.mark.parametrize("job", RUN, ids=lambda p: p.stem)
def test_job_runs_end_to_end(tmp_path, job, cli_on_one_ray):
    out = tmp_path / "out"
    args = [a for s in TINY for a in ("--set", s)]
    proc = cli_on_one_ray("run", str(job), "--out", str(out), *args)
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
        assert meta["sampling"] == {
            "sampler": g.sampling.sampler,
            "steps": g.sampling.steps,
            "eta": g.sampling.eta,
            "guidance": g.sampling.guidance,
        }
    verified = cli_on_one_ray("verify", str(out))
    assert verified.returncode == 0 and "verify: ok, 2 shards, 60 samples" in verified.stdout, verified.stderr
    has_encoder = spec.model.name in ("vae", "beta_vae", "cvae")  # the report shows reconstructions
    assert (out / "report_reconstructions.png").is_file() == has_encoder
    if has_encoder:
        assert (
            0 < report["figures"]["reconstruction_mae"] < 255 and "Reconstructions" in (out / "report.html").read_text()
        )


@pytest.mark.parametrize("job", [j for j in JOBS if j not in RUN], ids=lambda p: p.stem)
def test_job_like_another_is_valid_and_differs_only_in_settings(job, cli_on_one_ray):
    """A job whose model and data source another job's tiny run covers (its settings differ) is checked
    as far as --dry-run goes: it loads, validates and prints the settings it would run with."""
    proc = cli_on_one_ray("run", str(job), "--out", "/nonexistent/never-written", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert load_job(job, []).model_dump() != load_job(covered_by(job), []).model_dump()
    assert f"name: {load_job(job, []).model.name}" in proc.stdout


def test_unconditional_model_writes_an_unlabelled_dataset(tmp_path, cli_on_one_ray):
    """No class was asked for, so none is recorded; the report still shows what classes the images look
    like. (The DCGAN; the VAE family samples without a class in tests/unit/test_families.py.)"""
    import numpy as np

    import synth
    from synth.reader import UNLABELLED

    out = tmp_path / "out"
    name = "dcgan"
    args = [a for s in [*TINY, f"model.name={name}"] for a in ("--set", s)]
    proc = cli_on_one_ray("run", str(ROOT / "jobs" / "quickstart.yaml"), "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "label fidelity" not in proc.stdout and "domain FID" in proc.stdout
    with tarfile.open(out / "shards" / "quickstart-000001.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile(next(n for n in names if n.endswith(".json"))).read())
    assert len(names) == 60 and not any(n.endswith(".cls") for n in names)  # 30 samples: .json + .png
    assert "class" not in meta and meta["model"] == name
    assert pq.read_table(out / "manifest.parquet").column("class").null_count == 60
    verified = cli_on_one_ray("verify", str(out))
    assert verified.returncode == 0 and "verify: ok, 2 shards, 60 samples" in verified.stdout, verified.stderr
    labels = [int(y) for _, y in synth.open_dataset(str(out), shuffle=False)]
    assert labels == [UNLABELLED] * 60
    figures = json.loads((out / "report.json").read_text())["figures"]
    assert figures["label_fidelity"] is None and figures["requested_class_counts"] is None
    assert sum(figures["predicted_class_counts"]) == 30 and np.isfinite(figures["fid_domain"])
    assert "one row per class the domain classifier sees" in (out / "report.html").read_text()
