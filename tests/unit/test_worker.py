"""The shard worker called directly (no Ray): output, resume marker, determinism."""

import io
import json
import tarfile
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import save

from synth.generate.plan import Plan
from synth.generate.worker import GeneratorRef, ShardWork, part_path, shard_is_done, write_one_shard
from synth.manifest import write_manifest
from synth.models import build_gan
from synth.spec import ModelSpec


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    G, _, cfg = build_gan(ModelSpec(width=16, latent_dim=16), 8, 1, 10)
    config = {"resolution": 8, "channels": 1, "num_classes": 10, "latent_dim": 16, "width": 16}
    return GeneratorRef("dcgan_cond", config, "test-digest"), save(dict(G.state_dict()))


def works(out_dir, ref, batch_size=16, count=25, shard_size=10):
    plan = Plan(count, shard_size, 10, job_seed=5, prefix="t")
    names = tuple(str(i) for i in range(10))
    return plan, [ShardWork(str(out_dir), plan, s, batch_size, "plan-1", ref, names) for s in plan.shards()]


def test_writes_shard_and_part(tmp_path, generator):
    ref, weights = generator
    plan, ws = works(tmp_path, ref)
    results = [write_one_shard(w, weights) for w in ws]
    assert [r.num_samples for r in results] == [10, 10, 5]
    with tarfile.open(tmp_path / "shards" / "t-000002.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["0000000020.cls", "0000000020.json", "0000000020.png"]
        meta = json.loads(tar.extractfile("0000000021.json").read())
        img = Image.open(io.BytesIO(tar.extractfile("0000000021.png").read()))
        assert img.size == (8, 8) and img.mode == "L"
    assert meta["class"] == 1 and meta["index"] == 21 and meta["seed"] == int(plan.seeds(21, 22)[0])
    manifest = pq.read_table(write_manifest(tmp_path, plan)).to_pandas()
    assert len(manifest) == 25 and manifest["key"].is_unique
    assert np.bincount(manifest["class"], minlength=10).tolist() == plan.class_counts().tolist()


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


def test_bytes_do_not_depend_on_batch_size(tmp_path, generator):
    ref, weights = generator
    _, a = works(tmp_path / "a", ref, batch_size=16)
    _, b = works(tmp_path / "b", ref, batch_size=3)
    ra = [write_one_shard(w, weights).md5 for w in a]
    rb = [write_one_shard(w, weights).md5 for w in reversed(b)][::-1]
    assert ra == rb
    assert pq.read_table(part_path(tmp_path / "a", "t-000001.tar")).equals(
        pq.read_table(part_path(tmp_path / "b", "t-000001.tar"))
    )
