"""Inception features computed in the generation workers, and the evaluated samples they cover."""

import numpy as np
import pytest

from synth.data import resize_images
from synth.fsutil import file_digest
from synth.generate.plan import Plan, head_counts, resolve_class_counts
from synth.generate.worker import Encoding, ShardWork, write_one_shard
from synth.manifest import write_manifest
from synth.metrics.evaluate import read_generated
from synth.metrics.features import (
    FeatureTarget,
    extractor,
    feature_key,
    features_rel,
    fill_missing,
    local_pass,
    stored_features,
)
from synth.metrics.fid import inception_weights_path
from synth.storage import Store

NAMES = tuple(str(i) for i in range(10))


@pytest.mark.parametrize("sizes", [[1000] * 10, [50, 50, 50, 50, 30], [5, 100, 100], [3, 3], [7], [10, 1, 10, 1]])
@pytest.mark.parametrize("n", [0, 1, 7, 40, 61, 260, 5000])
def test_head_counts(sizes, n):
    counts = head_counts(sizes, n)
    assert sum(counts) == min(n, sum(sizes))
    assert all(0 <= c <= s for c, s in zip(counts, sizes))
    # even: every shard gives k (or k - 1), or all it has if that is fewer
    k = max(counts)
    assert all(c in (min(s, k), min(s, k) - 1) for c, s in zip(counts, sizes))


def test_head_counts_examples():
    assert head_counts([1000] * 10, 1000) == [100] * 10  # the quickstart: 100 of each shard
    assert head_counts([50, 50, 50, 50, 30], 40) == [8] * 5
    assert head_counts([5, 100, 100], 60) == [5, 28, 27]  # a short shard gives all it has
    assert head_counts([3, 3], 100) == [3, 3]
    assert head_counts([1000] * 10, 3) == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0]  # fewer than shards: spread out


def generate(root, generator, n_eval, features=True, plan_digest="plan-1"):
    """30 samples in shards of 10, JPEG at 12x12 (judged at 8x8): the features must be of the decoded,
    resized-back pixels, not of what the generator made."""
    ref, weights = generator
    plan = Plan(resolve_class_counts("balanced", 30, True, 1, list(NAMES)), 10, job_seed=5, prefix="t")
    takes = head_counts([s.size for s in plan.shards()], n_eval)
    path = inception_weights_path()
    inception = path.read_bytes()
    store = Store(root)
    for s in plan.shards():
        target = FeatureTarget(takes[s.index], 8, 1, file_digest(path)) if features else None
        write_one_shard(
            ShardWork(
                store, plan, s, 16, plan_digest, ref, NAMES, Encoding("jpg", quality=60, resolution=12), features=target
            ),
            weights,
            inception,
        )
    write_manifest(store, plan, list(NAMES))
    return store, plan


def stored(store, gen, key):
    found, unreadable = stored_features(store, gen.shards, key)
    return np.concatenate(list(found.values())), unreadable


def test_generation_features_are_evaluations(tmp_path, generator):
    store, _plan = generate(tmp_path, generator, n_eval=13)
    gen = read_generated(store, 13)
    assert list(gen.shards) == ["t-000000.tar", "t-000001.tar", "t-000002.tar"]
    assert [i.tolist() for i, _ in gen.shards.values()] == [[0, 1, 2, 3, 4], [10, 11, 12, 13], [20, 21, 22, 23]]
    net = extractor()
    key = feature_key(net, 8, 1)
    features, unreadable = stored(store, gen, key)
    assert not np.isnan(features).any() and not unreadable
    judged = resize_images(gen.images, 8, 1)  # evaluation's view: decoded JPEG, resized to the data's size
    assert gen.images.shape[1:] == (12, 12, 1)
    computed = net(judged)
    assert np.abs(features - computed).max() < 1e-3 * np.abs(computed).max()
    # features under another key (another size, other weights, other code) are not used
    assert np.isnan(stored(store, gen, feature_key(net, 16, 1))[0]).all()


def test_missing_or_damaged_stored_features_are_computed(tmp_path, generator):
    store, _ = generate(tmp_path, generator, n_eval=13)
    gen = read_generated(store, 13)
    store.remove(features_rel("t-000001.tar"))
    data = store.read_bytes(features_rel("t-000002.tar"))
    store.write_bytes(features_rel("t-000002.tar"), data[: len(data) // 2])  # a truncated file
    net = extractor()
    features, unreadable = stored(store, gen, feature_key(net, 8, 1))
    assert np.isnan(features).any(axis=1).tolist() == [False] * 5 + [True] * 8
    assert unreadable == [store.where(features_rel("t-000002.tar"))]
    seen = []
    computed = fill_missing(features, resize_images(gen.images, 8, 1), local_pass(net), seen.append)
    assert computed == 8 and sum(seen) == 8 and not np.isnan(features).any()


def test_features_of_another_shard_are_not_used(tmp_path, generator):
    """Stored features name the shard's md5: a shard replaced by other means keeps none of them."""
    store, _ = generate(tmp_path, generator, n_eval=13)
    gen = read_generated(store, 13)
    name = "t-000000.tar"
    indices, _md5 = gen.shards[name]
    found, _ = stored_features(store, {name: (indices, "0" * 32)}, feature_key(extractor(), 8, 1))
    assert np.isnan(found[name]).all()


def test_regenerated_shard_drops_its_old_features(tmp_path, generator):
    """A shard made again under another plan, with features off, must not keep the old plan's features."""
    store, _ = generate(tmp_path, generator, n_eval=13)
    assert store.exists(features_rel("t-000000.tar"))
    generate(tmp_path, generator, n_eval=13, features=False, plan_digest="plan-2")
    assert not any(store.exists(features_rel(f"t-00000{i}.tar")) for i in range(3))
