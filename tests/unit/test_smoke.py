"""The fast tier's one end-to-end run: `synth run` as a user types it, on its own embedded Ray, with a
tiny model and few steps, from the job file to shards a reader takes and a report."""

import json
import tarfile

import pyarrow.parquet as pq

from tests.conftest import run_cli

JOB = {
    "seed": 2,
    "data": {"source": "digits", "resolution": 8},
    "model": {"name": "dcgan_cond", "width": 16, "latent_dim": 16},
    "train": {"steps": 30, "batch_size": 32, "log_every": 10, "checkpoint_every": 100, "ema_start": 0},
    "generate": {"count": 200, "shard_size": 100, "batch_size": 50},
    "evaluate": {
        "num_samples": 100,
        "inception": False,
        "classifier_epochs": 1,
        "cas_samples": 100,
        "cas_epochs": 1,
        "memorisation_rows": 0,
    },
    "output": {"name": "smoke"},
}


def test_synth_run_end_to_end_on_an_embedded_ray(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps(JOB))
    out = tmp_path / "out"
    proc = run_cli("run", str(job), "--out", str(out), timeout_s=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained: 30 steps on 1 worker(s)" in proc.stdout
    assert "generated: 200 images in 2 shards" in proc.stdout
    rows = pq.read_table(out / "manifest.parquet").to_pydict()
    assert len(rows["key"]) == 200 and sorted(set(rows["class"])) == list(range(10))
    with tarfile.open(out / "shards" / "smoke-000001.tar") as tar:
        names = tar.getnames()
        assert len(names) == 300 and names[0] == "0000000100.cls"
        assert int(tar.extractfile("0000000100.cls").read()) == rows["class"][100]
    report = json.loads((out / "report.json").read_text())
    assert 0 <= report["figures"]["label_fidelity"] <= 1 and (out / "report.html").stat().st_size > 10_000
