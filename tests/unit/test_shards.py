import io
import json
import tarfile

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from synth.shards import md5_file, read_shard, write_shard
from synth.storage import Store


def samples(n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, format="PNG")
        yield f"{i:06d}", {"png": buf.getvalue(), "cls": str(i % 3).encode(), "json": json.dumps({"i": i}).encode()}


def test_round_trip_with_tarfile_and_pillow(tmp_path):
    shard = write_shard(Store(tmp_path), "s-000000.tar", samples(5))
    path = tmp_path / shard.path
    assert shard.num_samples == 5 and shard.num_bytes == path.stat().st_size
    assert shard.md5 == md5_file(path)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["000000.cls", "000000.json", "000000.png"]
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members)
        img = Image.open(tar.extractfile("000004.png"))
        assert img.size == (8, 8)
        assert tar.extractfile("000004.cls").read() == b"1"
    assert [k for k, _ in read_shard(path)] == [f"{i:06d}" for i in range(5)]


def test_webdataset_reads_it(tmp_path):
    write_shard(Store(tmp_path), "s-000000.tar", samples(4))
    ds = wds.WebDataset(str(tmp_path / "s-000000.tar"), shardshuffle=False).decode("pil")
    got = [(s["__key__"], int(s["cls"]), s["png"].size) for s in ds]
    assert got == [(f"{i:06d}", i % 3, (8, 8)) for i in range(4)]


def test_same_samples_same_bytes(tmp_path):
    a = write_shard(Store(tmp_path), "a.tar", samples(6))
    b = write_shard(Store(tmp_path), "b.tar", samples(6))
    assert a.md5 == b.md5 and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_memory_filesystem_and_file_url(tmp_path):
    mem = Store("memory://synth-test-shards")
    a = write_shard(mem, "shards/a.tar", samples(6))
    b = write_shard(Store(f"file://{tmp_path}"), "shards/a.tar", samples(6))
    assert a.md5 == b.md5 == md5_file(tmp_path / "shards" / "a.tar")
    assert mem.read_bytes("shards/a.tar") == (tmp_path / "shards" / "a.tar").read_bytes()
    assert mem.listdir("shards") == ["a.tar"]
    with mem.open("shards/a.tar") as fh:
        assert [k for k, _ in read_shard(fh)] == [f"{i:06d}" for i in range(6)]


def test_failure_leaves_nothing(tmp_path):
    def broken():
        yield from samples(2)
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        write_shard(Store(tmp_path), "s.tar", broken())
    assert list(tmp_path.iterdir()) == []


def test_dotted_key_refused(tmp_path):
    with pytest.raises(ValueError, match="must not contain"):
        write_shard(Store(tmp_path), "s.tar", [("a.b", {"cls": b"1"})])
    assert list(tmp_path.iterdir()) == []


def tarfile_reference(samples) -> bytes:
    """The same samples written by the standard library's tarfile (USTAR, our member attributes)."""
    from synth.shards import _member

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            for ext in sorted(fields):
                tar.addfile(_member(f"{key}.{ext}", len(fields[ext])), io.BytesIO(fields[ext]))
    return buf.getvalue()


@pytest.mark.parametrize("count", [0, 1, 7, 40])
def test_bytes_equal_tarfiles(count):
    """Our header template writes exactly what tarfile writes, padding and end-of-archive included."""
    from synth.shards import write_tar

    rng = np.random.default_rng(count)
    items = [
        (
            f"{i:010d}",
            {
                "cls": b"7",
                "json": bytes(rng.integers(0, 255, int(rng.integers(0, 1500)), np.uint8)),
                "png": b"x" * int(rng.integers(0, 3000)),
                "a_long_extension_name": b"",
            },
        )
        for i in range(count)
    ]
    buf = io.BytesIO()
    n, size, md5 = write_tar(buf, items)
    expected = tarfile_reference(items)
    assert buf.getvalue() == expected
    assert (n, size, md5) == (count, len(expected), __import__("hashlib").md5(expected).hexdigest())
