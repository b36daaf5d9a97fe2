"""`synth generate` at work on a real embedded Ray: faults, interruption and resume, readers, URLs, verify.

One tiny model is trained once (module fixture); each test generates from a
copy of it. "Reference" is an uninterrupted run; every other run must end
with byte-identical shards.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synth.shards import md5_file

from ..conftest import QUICKSTART, ROOT, run_cli

TRAIN = [
    "--set",
    "data.limit=1000",
    "--set",
    "train.steps=30",
    "--set",
    "train.log_every=10",
    "--set",
    "train.checkpoint_every=30",
    "--set",
    "output.name=gen",
    "--set",
    "evaluate.features_at_generation=false",
]  # tests/unit/test_features.py has them
# 10,000 images in 10 shards: long enough (several seconds) to interrupt mid-way
GEN = TRAIN + ["--set", "generate.count=10000", "--set", "generate.shard_size=1000", "--set", "generate.batch_size=250"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "trained"
    proc = run_cli("train", str(QUICKSTART), "--out", str(out), *TRAIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def copy_of(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained, dest)
    return dest


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory):
    out = copy_of(trained, tmp_path_factory.mktemp("ref") / "out")
    proc = run_cli("generate", str(QUICKSTART), "--out", str(out), *GEN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "10,000 new" in proc.stdout
    return out


def md5s(out: Path) -> dict[str, str]:
    return {p.name: md5_file(p) for p in sorted((out / "shards").iterdir())}


def start_generate(out: Path, *extra: str) -> subprocess.Popen:
    """`synth generate` in its own session, so the test can stop it (and only it, with its Ray) by group id."""
    return subprocess.Popen(
        [sys.executable, "-m", "synth.cli", "generate", str(QUICKSTART), "--out", str(out), *GEN, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_interruptible,  # noqa: PLW1509 -- the child has no threads yet when it runs
    )


def _interruptible() -> None:
    """SIGINT as at a terminal: a test run started in the background (`cmd &` in a script) passes
    SIGINT on as ignored, and the CLI would then never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def parts_done(out: Path) -> int:
    parts = out / ".synth" / "parts"
    return len([p for p in parts.glob("*.parquet")]) if parts.is_dir() else 0


def shard_temporaries(out: Path) -> list[Path]:
    shards = out / "shards"
    return [p for p in shards.iterdir() if p.name.startswith(".")] if shards.is_dir() else []


def shard_task_processes(session_id: int) -> list[psutil.Process]:
    """Ray worker processes of this session that are running a shard task right now."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if os.getsid(proc.pid) == session_id and "ray::write_one_shard" in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def test_killed_worker_is_retried_and_output_is_exact(trained, reference, tmp_path):
    out = copy_of(trained, tmp_path / "out")
    driver = start_generate(out)
    try:
        wait_for(lambda: shard_temporaries(out), 120, "a shard being written")
        victims = wait_for(lambda: shard_task_processes(driver.pid), 10, "a worker running a shard task")
        victim = victims[0]
        assert shard_temporaries(out), "the shard finished before the kill; the test proves nothing"
        victim.kill()  # SIGKILL, mid-shard
        victim.wait(10)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, stderr[-3000:]
    assert "10,000 new" in stdout and "0 shards already done" in stdout
    assert md5s(out) == md5s(reference)
    assert (out / "manifest.parquet").read_bytes() == (reference / "manifest.parquet").read_bytes()
    assert not shard_temporaries(out)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_driver_resumes_byte_identical(trained, reference, tmp_path, how):
    out = copy_of(trained, tmp_path / "out")
    driver = start_generate(out)
    try:
        wait_for(lambda: parts_done(out) >= 2, 120, "two shards done")
        if how == "SIGKILL":
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, at once
        else:
            driver.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    done_before = parts_done(out)
    assert 2 <= done_before < 10, "the run finished before it was interrupted; the test proves nothing"
    if how == "SIGINT":
        assert driver.returncode == 130 and "interrupted; run the same command again to resume" in stderr
        try:  # the Ray it started goes down with it
            wait_for(lambda: not [p for p in psutil.process_iter() if _in_session(p, driver.pid)], 30, "Ray to stop")
        finally:
            _kill_session(driver.pid)
    assert not (out / "manifest.parquet").exists()
    proc = run_cli("generate", str(QUICKSTART), "--out", str(out), *GEN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = int(proc.stdout.split(" shards already done")[0].rsplit(" ", 1)[-1])
    assert skipped >= done_before - 2  # at most the in-flight shards' parts were lost mid-write
    assert md5s(out) == md5s(reference)
    assert not shard_temporaries(out)


def _in_session(proc: psutil.Process, sid: int) -> bool:
    try:
        return os.getsid(proc.pid) == sid
    except (ProcessLookupError, PermissionError):
        return False


def _kill_session(sid: int) -> None:
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_five_readers_see_the_same_samples(reference):
    """tarfile + Pillow, webdataset, wids (via shardindex.json), Ray Data and synth.open_dataset agree."""
    import torch
    import webdataset as wds
    import wids

    import synth

    manifest = pq.read_table(reference / "manifest.parquet").to_pandas()
    expected = list(zip(manifest["key"], manifest["class"].astype(int)))
    assert len(expected) == 10_000
    shards = sorted(str(p) for p in (reference / "shards").glob("*.tar"))

    plain = []
    for path in shards:
        with tarfile.open(path) as tar:
            for name in tar.getnames():
                key, ext = name.split(".", 1)
                if ext == "png":
                    assert Image.open(io.BytesIO(tar.extractfile(name).read())).size == (28, 28)
                    plain.append((key, int(tar.extractfile(f"{key}.cls").read())))
    assert plain == expected

    ds = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "png", "cls")
    assert [(k, int(c)) for k, _, c in ds] == expected

    indexed = wids.ShardListDataset(str(reference / "shardindex.json"))
    assert len(indexed) == 10_000
    for i in (0, 4321, 9999):
        sample = indexed[i]
        assert (sample["__key__"], int(sample[".cls"])) == expected[i]

    loader = torch.utils.data.DataLoader(synth.open_dataset(str(reference), seed=1), batch_size=500, num_workers=2)
    labels, count = [], 0
    for images, y in loader:
        assert (
            images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28) and 0 <= images.min() <= images.max() <= 1
        )
        labels.append(y)
        count += len(y)
    got = torch.cat(labels).numpy()
    assert count == 10_000 and np.bincount(got).tolist() == np.bincount(manifest["class"]).tolist()
    assert not np.array_equal(got, manifest["class"].to_numpy()), "open_dataset did not shuffle"

    # Ray Data in a child interpreter with its own Ray: this module kills Rays of CLI runs, and a Ray
    # kept in the test process across that once hung (tests/conftest.py: ray_in_process)
    read = (
        "import json, sys, ray; ray.init(num_cpus=2, include_dashboard=False, logging_level='ERROR'); "
        "rows = ray.data.read_webdataset(sys.argv[1:]).select_columns(['__key__', 'cls']).take_all(); "
        "print(json.dumps([[r['__key__'], int(r['cls'])] for r in rows]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", read, *shards], capture_output=True, text=True, timeout=300, check=False
    )
    assert child.returncode == 0, child.stderr[-3000:]
    rows = json.loads(child.stdout.strip().splitlines()[-1])
    assert sorted((key, cls) for key, cls in rows) == expected


def test_quota_augment_webp_to_file_url_then_verify(trained, tmp_path):
    """The digits-augmented job, smaller, written to a file:// URL; verify passes, then names damaged shards."""
    out = copy_of(trained, tmp_path / "out")
    dataset = tmp_path / "dataset"
    args = [
        str(ROOT / "jobs" / "digits-augmented.yaml"),
        "--out",
        str(out),
        *TRAIN,
        "--set",
        "generate.count=1200",
        "--set",
        "generate.shard_size=250",
        "--set",
        f"output.url=file://{dataset}",
    ]
    proc = run_cli("generate", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"under file://{dataset}/shards" in proc.stdout
    manifest = pq.read_table(dataset / "manifest.parquet").to_pandas()
    # proportions 1:1:1:2:1:2:1:1:2:1 of 400 sources, 3 copies each
    # largest remainder: 7 classes get 31 sources, the 3 doubled ones 61
    assert np.bincount(manifest["class"], minlength=10).tolist() == [93, 93, 93, 183, 93, 183, 93, 93, 183, 93]
    copies = manifest.groupby("source")["copy"].apply(lambda c: tuple(sorted(c)))
    assert len(copies) == 400 and set(copies) == {(0, 1, 2)}
    with tarfile.open(dataset / "shards" / "gen-000001.tar") as tar:
        meta = json.loads(tar.extractfile("0000000300.json").read())
        img = Image.open(io.BytesIO(tar.extractfile("0000000300.webp").read()))
    assert img.format == "WEBP" and img.size == (32, 32)
    assert meta["source"] == 100 and meta["copy"] == 0 and isinstance(meta["augment"], list)
    assert not (out / "shards").exists()  # the dataset went to the URL, not under --out

    ok = run_cli("verify", str(out))  # finds the dataset through the job's output.url
    assert ok.returncode == 0 and "verify: ok, 5 shards, 1,200 samples" in ok.stdout, ok.stderr

    truncated = dataset / "shards" / "gen-000002.tar"
    truncated.write_bytes(truncated.read_bytes()[:20_000])
    flipped = dataset / "shards" / "gen-000004.tar"
    data = bytearray(flipped.read_bytes())
    data[-3000] ^= 0xFF
    flipped.write_bytes(bytes(data))
    bad = run_cli("verify", f"file://{dataset}")
    assert bad.returncode == 1
    assert "bad shard gen-000002.tar" in bad.stderr and "bad shard gen-000004.tar" in bad.stderr
    assert "gen-000001.tar" not in bad.stderr and "Traceback" not in bad.stderr
    assert "2 of 5 shards bad" in bad.stdout
