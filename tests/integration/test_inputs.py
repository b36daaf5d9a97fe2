"""Generation from input images (generate.inputs), through the CLI, with a member registered in a test
file (tests/plugins/mirror.py: each sample is its input mirrored, plus seeded noise).

From a real source's split, then from that synth dataset: each sample records its input and keeps its
class; the same bytes at any batch size; a killed run resumes to the same bytes; other inputs
regenerate.
"""

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, run_cli
from tests.integration.test_generate import _interruptible, md5s, parts_done, wait_for

PLUGIN = {"SYNTH_PLUGINS": "tests.plugins.mirror", "PYTHONPATH": str(ROOT)}
RESOLUTION = 16


def write_job(folder: Path, name: str, inputs: dict, **generate) -> Path:
    job = {
        "seed": 1,
        "data": {"source": "digits", "resolution": RESOLUTION},
        "model": {"name": "mirror"},
        "generate": {"inputs": inputs, "shard_size": 300, "batch_size": 50, **generate},
        "evaluate": {"features_at_generation": False},
        "output": {"name": name},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(job))
    return path


def synth(*args: str) -> subprocess.CompletedProcess:
    proc = run_cli(*args, env=PLUGIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def manifest(out: Path) -> dict:
    return pq.read_table(out / "manifest.parquet").to_pydict()


def first_image(out: Path) -> tuple[dict, np.ndarray]:
    from PIL import Image

    shard = min((out / "shards").iterdir())
    with tarfile.open(shard) as tar:
        meta = json.loads(tar.extractfile("0000000000.json").read())
        image = np.asarray(Image.open(tar.extractfile("0000000000.png")))
    return meta, image


@pytest.fixture(scope="module")
def from_source(tmp_path_factory):
    """All 1,797 of scikit-learn's digits, each mirrored once."""
    folder = tmp_path_factory.mktemp("inputs")
    job = write_job(folder, "mirrored", {"source": "digits", "split": "train"})
    out = folder / "mirrored"
    trained = synth("train", str(job), "--out", str(out))
    assert "nothing to train" in trained.stdout
    made = synth("generate", str(job), "--out", str(out))
    assert "1,797 images in 6 shards" in made.stdout
    return out


def test_a_real_source_makes_one_sample_per_input_keeping_its_class(from_source):
    from synth.data import load_dataset
    from synth.spec import DataSpec

    rows = manifest(from_source)
    digits = load_dataset(DataSpec(source="digits", resolution=RESOLUTION))
    assert rows["input_key"][:2] == ["digits-train/0000000", "digits-train/0000001"]
    assert rows["input_class"] == digits.labels.tolist() and rows["class"] == digits.labels.tolist()
    meta, image = first_image(from_source)
    assert meta["input_key"] == "digits-train/0000000" and meta["input_class"] == meta["class"] == 0
    mirrored = digits.images[0, :, ::-1, 0].astype(int)
    assert 0 < np.abs(image.astype(int) - mirrored).mean() < 8  # the input, mirrored, plus noise
    assert "verify: ok" in synth("verify", str(from_source)).stdout


@pytest.fixture(scope="module")
def chained(from_source, tmp_path_factory):
    """An earlier synth dataset as the inputs: two samples (two seeds) of each of its first 1,500."""
    folder = tmp_path_factory.mktemp("chained")
    job = write_job(folder, "again", {"dataset": str(from_source), "limit": 1500, "per_input": 2})
    out = folder / "again"
    synth("train", str(job), "--out", str(out))
    reference = folder / "reference"
    import shutil

    shutil.copytree(out, reference)
    made = synth("generate", str(job), "--out", str(reference))
    assert "3,000 images in 10 shards" in made.stdout
    return job, out, reference


def test_an_earlier_synth_dataset_as_inputs_keeps_keys_and_classes(from_source, chained):
    _, _, reference = chained
    before, rows = manifest(from_source), manifest(reference)
    assert rows["input_key"][:4] == [before["key"][0], before["key"][0], before["key"][1], before["key"][1]]
    assert rows["class"][::2] == before["class"][:1500] and rows["class"][1::2] == before["class"][:1500]
    meta, image = first_image(reference)
    _, source_image = first_image(from_source)
    assert meta["input_key"] == before["key"][0]
    assert 0 < np.abs(image.astype(int) - source_image[:, ::-1].astype(int)).mean() < 8  # mirrored back


def test_the_same_bytes_at_any_batch_size(chained, tmp_path):
    job, trained, reference = chained
    import shutil

    out = shutil.copytree(trained, tmp_path / "out")
    synth("generate", str(job), "--out", str(out), "--set", "generate.batch_size=7")
    assert md5s(out) == md5s(reference)


def test_a_killed_run_resumes_to_the_same_bytes_and_other_inputs_regenerate(chained, tmp_path):
    job, trained, reference = chained
    import shutil

    out = shutil.copytree(trained, tmp_path / "out")
    driver = subprocess.Popen(
        [sys.executable, "-m", "synth.cli", "generate", str(job), "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **PLUGIN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_interruptible,  # noqa: PLW1509 -- the child has no threads yet when it runs
    )
    try:
        wait_for(lambda: parts_done(out) >= 2, 180, "two shards done")
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, at once
        driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    done_before = parts_done(out)
    assert 2 <= done_before < 10, "the run finished before it was killed; the test proves nothing"
    resumed = synth("generate", str(job), "--out", str(out))
    skipped = int(resumed.stdout.split(" shards already done")[0].rsplit(" ", 1)[-1])
    assert skipped >= done_before - 2  # at most the in-flight shards' parts were lost mid-write
    assert md5s(out) == md5s(reference)
    # other inputs (the first 1,200 of the dataset): another plan, every shard made again
    other = synth("generate", str(job), "--out", str(out), "--set", "generate.inputs.limit=1200")
    assert "2,400 images in 8 shards" in other.stdout and "0 shards already done" in other.stdout
    assert manifest(out)["input_key"][-1] == manifest(reference)["input_key"][2399]


def test_a_shard_task_reads_only_its_own_inputs(from_source, tmp_path):
    """With every shard but the second gone, the inputs that second shard holds still read (and no others):
    a task reads the manifest's row groups and the shards of its own inputs only."""
    import shutil

    from synth.errors import SynthError
    from synth.generate.inputs import open_inputs
    from synth.spec import InputsSpec

    copy = shutil.copytree(from_source, tmp_path / "copy")
    for shard in sorted((copy / "shards").iterdir()):
        if shard.name != "mirrored-000001.tar":
            shard.unlink()
    inputs = open_inputs(InputsSpec(dataset=str(copy)), RESOLUTION, 1)
    assert inputs.count == 1797 and inputs.class_names == tuple(str(d) for d in range(10))
    read = inputs.read(310, 330)
    assert read.keys == [f"{k:010d}" for k in range(310, 330)] and read.images.shape == (20, RESOLUTION, RESOLUTION, 1)
    assert read.classes.tolist() == manifest(from_source)["class"][310:330]
    with pytest.raises(SynthError, match="mirrored-000000.tar is missing"):
        inputs.read(0, 10)
