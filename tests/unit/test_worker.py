"""The shard worker called directly (no Ray): output, resume marker, determinism, encodings, augmentation."""

import io
import json
import tarfile
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from synth.augment import AugmentSpec, replay
from synth.generate.plan import Plan, resolve_class_counts
from synth.generate.worker import (
    Encoding,
    ShardWork,
    load_generator,
    part_rel,
    sample_images,
    shard_is_done,
    write_one_shard,
)
from synth.manifest import write_manifest
from synth.models import build_gan
from synth.models.gan import GanModel
from synth.storage import Store

from ..conftest import members

NAMES = tuple(str(i) for i in range(10))


def works(root, ref, batch_size=16, count=25, shard_size=10, copies=1, **kw):
    counts = resolve_class_counts("balanced", count, True, copies, list(NAMES))
    plan = Plan(counts, shard_size, job_seed=5, prefix="t", copies=copies)
    store = root if isinstance(root, Store) else Store(root)
    return plan, [ShardWork(store, plan, s, batch_size, "plan-1", ref, NAMES, **kw) for s in plan.shards()]


def test_writes_shard_and_part(tmp_path, generator):
    ref, weights = generator
    plan, ws = works(tmp_path, ref)
    results = [write_one_shard(w, weights) for w in ws]
    assert [r.num_samples for r in results] == [10, 10, 5]
    assert all(r.peak_rss_mb > 0 for r in results)
    with tarfile.open(tmp_path / "shards" / "t-000002.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["0000000020.cls", "0000000020.json", "0000000020.png"]
        meta = json.loads(tar.extractfile("0000000021.json").read())
        img = Image.open(io.BytesIO(tar.extractfile("0000000021.png").read()))
        assert img.size == (8, 8) and img.mode == "L"
    s = plan.samples(21, 22)
    assert meta["class"] == int(s.label[0]) and meta["index"] == 21 and meta["seed"] == int(s.seed[0])
    assert meta["source"] == 21 and meta["copy"] == 0 and "augment" not in meta
    summary = write_manifest(Store(tmp_path), plan, list(NAMES))
    manifest = pq.read_table(tmp_path / "manifest.parquet").to_pandas()
    assert summary["samples"] == len(manifest) == 25 and manifest["key"].is_unique
    assert np.bincount(manifest["class"], minlength=10).tolist() == list(plan.class_counts)
    index = json.loads((tmp_path / "shardindex.json").read_text())
    assert index["__kind__"] == "wids-shard-index-v1"
    assert [(e["url"], e["nsamples"], e["md5sum"]) for e in index["shardlist"]] == [
        (f"shards/{r.name}", r.num_samples, r.md5) for r in results
    ]
    info = json.loads((tmp_path / "_info.json").read_text())
    assert info["splits"]["train"]["num_samples"] == 25 and info["splits"]["train"]["shard_lengths"] == [10, 10, 5]


def test_done_shards_are_skipped(tmp_path, generator):
    ref, weights = generator
    _, ws = works(tmp_path, ref)
    first = write_one_shard(ws[0], weights)
    assert shard_is_done(ws[0]) and not shard_is_done(ws[1])
    again = write_one_shard(ws[0], weights)
    assert again.skipped and again.md5 == first.md5
    # another plan (e.g. a retrained generator) is not done
    assert not shard_is_done(replace(ws[0], plan_digest="plan-2"))
    # a truncated tar is not done
    tar = tmp_path / "shards" / ws[0].shard.name
    tar.write_bytes(tar.read_bytes()[:1000])
    assert not shard_is_done(ws[0])


def test_killed_attempt_leaves_nothing_visible(tmp_path, generator):
    """What a killed worker leaves (hidden temporaries) is removed by the retry, which writes the same bytes."""
    ref, weights = generator
    _, ws = works(tmp_path / "a", ref)
    clean = write_one_shard(ws[0], weights)
    _, ws = works(tmp_path / "b", ref)
    (tmp_path / "b" / "shards").mkdir(parents=True)
    (tmp_path / "b" / "shards" / ".t-000000.tar.tmp-0123456789ab").write_bytes(b"half a tar")
    assert not shard_is_done(ws[0])
    retried = write_one_shard(ws[0], weights)
    assert retried.md5 == clean.md5
    assert sorted(p.name for p in (tmp_path / "b" / "shards").iterdir()) == ["t-000000.tar"]


def test_bytes_do_not_depend_on_batch_size(tmp_path, generator):
    ref, weights = generator
    _, a = works(tmp_path / "a", ref, batch_size=16)
    _, b = works(tmp_path / "b", ref, batch_size=3)
    ra = [write_one_shard(w, weights).md5 for w in a]
    rb = [write_one_shard(w, weights).md5 for w in reversed(b)][::-1]
    assert ra == rb
    assert pq.read_table(tmp_path / "a" / part_rel("t-000001.tar")).equals(
        pq.read_table(tmp_path / "b" / part_rel("t-000001.tar"))
    )


@pytest.mark.parametrize(
    "encoding,ext,mode",
    [
        (Encoding("png", png_compression=9), "png", "PNG"),
        (Encoding("jpg", quality=80), "jpg", "JPEG"),
        (Encoding("webp", quality=70), "webp", "WEBP"),
        (Encoding("webp", lossless=True), "webp", "WEBP"),
    ],
)
def test_encodings_and_output_size(tmp_path, generator, encoding, ext, mode):
    ref, weights = generator
    enc = replace(encoding, resolution=20, resize_filter="lanczos")
    _, ws = works(tmp_path, ref, count=5, shard_size=5, encoding=enc)
    write_one_shard(ws[0], weights)
    files = members(tmp_path / "shards" / "t-000000.tar")
    img = Image.open(io.BytesIO(files[f"0000000003.{ext}"]))
    assert img.format == mode and img.size == (20, 20)
    meta = json.loads(files["0000000003.json"])
    assert meta["format"] == ext and meta["size"] == [20, 20] and meta["resize"] == {"from": 8, "filter": "lanczos"}
    if encoding.lossless or ext == "png":  # lossless: the pixels are exactly the resized generator output
        G = load_generator(ref, weights)
        s = ws[0].plan.samples(3, 4)
        expected = enc.resize(sample_images(G, s.seed, s.label, 4)[0])
        assert np.array_equal(np.asarray(img.convert("L"))[..., None], expected)


AUG = AugmentSpec.model_validate(
    {
        "copies": 3,
        "ops": [
            {"op": "hflip"},
            {"op": "random_resized_crop", "scale": [0.6, 1.0]},
            {"op": "rotate", "degrees": [-20, 20]},
            {"op": "color_jitter", "brightness": 0.3, "contrast": 0.3},
            {"op": "gaussian_blur", "p": 0.5},
            {"op": "gaussian_noise", "sigma": [0.01, 0.05]},
            {"op": "erase", "p": 0.7},
        ],
    }
)


def test_augmented_copies_record_and_replay(tmp_path, generator):
    """Each copy is its own sample, records its source and parameters, and replays to the same pixels."""
    ref, weights = generator
    _plan, ws = works(tmp_path, ref, count=30, shard_size=30, copies=3, augment=AUG)
    write_one_shard(ws[0], weights)
    files = members(tmp_path / "shards" / "t-000000.tar")
    G = load_generator(ref, weights)
    copies_of_source_4 = []
    for index in (12, 13, 14):
        meta = json.loads(files[f"{index:010d}.json"])
        assert meta["source"] == 4 and meta["copy"] == index - 12 and meta["augment"]
        png = np.asarray(Image.open(io.BytesIO(files[f"{index:010d}.png"])))[..., None]
        source_image = sample_images(G, np.array([meta["seed"]]), np.array([meta["class"]]), 1)[0]
        assert np.array_equal(replay(AUG.ops, source_image, meta["augment"]), png)
        copies_of_source_4.append(png)
    assert not np.array_equal(copies_of_source_4[0], copies_of_source_4[1])
    ops_seen = {
        entry["op"] for key, data in files.items() if key.endswith(".json") for entry in json.loads(data)["augment"]
    }
    assert ops_seen == {
        "hflip",
        "random_resized_crop",
        "rotate",
        "color_jitter",
        "gaussian_blur",
        "gaussian_noise",
        "erase",
    }


def test_memory_filesystem_end_to_end(generator):
    """Shards, parts, manifest and indexes on an in-memory fsspec filesystem; verify reads them back."""
    from synth.manifest import verify

    ref, weights = generator
    store = Store("memory://synth-worker-test")
    plan, ws = works(store, ref, count=25, shard_size=10)
    for w in ws:
        write_one_shard(w, weights)
    write_manifest(store, plan, list(NAMES))
    assert store.listdir("shards") == ["t-000000.tar", "t-000001.tar", "t-000002.tar"]
    assert {"manifest.parquet", "shardindex.json", "_info.json"} <= set(store.listdir(""))
    assert [c.problems for c in verify(store)] == [[], [], []]
    store.fs.rm(store.path(""), recursive=True)


def test_prefetch_keeps_order_bytes_and_errors(tmp_path, generator):
    from synth.generate.worker import prefetch

    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        list(prefetch(broken(), depth=1))
    early = prefetch(iter(range(1000)), depth=1)
    assert next(early) == 0
    early.close()  # the consumer stops: the thread must stop too (close() returns only after join)

    ref, weights = generator
    _, plain = works(tmp_path / "a", ref, batch_size=4)
    _, ahead = works(tmp_path / "b", ref, batch_size=4, prefetch=2)
    assert [write_one_shard(w, weights).md5 for w in plain] == [write_one_shard(w, weights).md5 for w in ahead]


def test_shards_that_start_mid_source(tmp_path, generator):
    """copies=3 in shards of 10: shards 1 and 2 begin with the 2nd/3rd copy of a source; every sample is still right."""
    ref, weights = generator
    _plan, ws = works(tmp_path, ref, count=30, shard_size=10, copies=3, augment=AUG)
    G = load_generator(ref, weights)
    for w in ws:
        write_one_shard(w, weights)
        files = members(tmp_path / "shards" / w.shard.name)
        for index in range(w.shard.start, w.shard.stop):
            meta = json.loads(files[f"{index:010d}.json"])
            assert meta["source"] == index // 3 and meta["copy"] == index % 3
            png = np.asarray(Image.open(io.BytesIO(files[f"{index:010d}.png"])))[..., None]
            source_image = sample_images(G, np.array([meta["seed"]]), np.array([meta["class"]]), 1)[0]
            assert np.array_equal(replay(AUG.ops, source_image, meta["augment"]), png)


def test_images_do_not_depend_on_batch_size_even_at_one():
    """A one-row forward takes another BLAS path than a many-row one; padded fixed-shape forwards hide that."""
    torch.manual_seed(1)
    G, _, _ = build_gan(GanModel(width=64, latent_dim=64), 28, 1, 10)
    from synth.generate.worker import LoadedModel
    from synth.models.common import sample_seeds
    from synth.models.gan import FAMILY

    G = LoadedModel(FAMILY, G.eval())

    seeds, labels = sample_seeds(3, np.arange(300)), np.arange(300) % 10
    reference = sample_images(G, seeds, labels, 250)
    for batch_size in (1, 7, 64, 300):
        assert np.array_equal(sample_images(G, seeds, labels, batch_size), reference), batch_size


def test_sample_bytes_do_not_depend_on_shard_size(tmp_path, generator):
    """The same plan cut into shards of 10 and of 30 (copies=3, so shards start mid-source): same bytes per key."""
    ref, weights = generator
    by_key = []
    for shard_size in (10, 30):
        _, ws = works(tmp_path / str(shard_size), ref, count=30, shard_size=shard_size, copies=3, augment=AUG)
        files = {}
        for w in ws:
            write_one_shard(w, weights)
            files.update(members(tmp_path / str(shard_size) / "shards" / w.shard.name))
        by_key.append(files)
    assert len(by_key[0]) == 90 and by_key[0] == by_key[1]


def test_a_failed_shard_stops_its_sampler_thread(tmp_path, generator):
    """An encoding error must not leave the shared sampler thread blocked: the next shard still runs."""
    import threading

    ref, weights = generator
    _, ws = works(tmp_path, ref, count=20, shard_size=10, prefetch=1, encoding=Encoding("png", resolution=8))
    broken = replace(ws[0], encoding=replace(ws[0].encoding, format="bmp"))  # unknown format: encode raises
    kept = []
    try:
        write_one_shard(broken, weights)
    except ValueError as exc:
        kept.append(exc)  # keep the error (and its frames) alive, as a test runner or a caller may
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=write_one_shard(ws[1], weights)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert kept and not worker.is_alive() and result["r"].num_samples == 10
