import numpy as np
import pytest

from synth.generate.plan import Plan, sample_key


@pytest.mark.parametrize("count,shard_size,k", [(10_000, 1_000, 10), (1_003, 100, 10), (7, 3, 4), (5, 10, 10)])
def test_exact_counts_and_full_cover(count, shard_size, k):
    plan = Plan(count, shard_size, k, job_seed=0, prefix="x")
    shards = plan.shards()
    assert shards[0].start == 0 and shards[-1].stop == count
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
    assert sum(s.size for s in shards) == count and all(0 < s.size <= shard_size for s in shards)
    labels = np.concatenate([plan.labels(s.start, s.stop) for s in shards])
    counts = np.bincount(labels, minlength=k)
    assert counts.tolist() == plan.class_counts().tolist() and counts.sum() == count
    assert counts.max() - counts.min() <= 1


def test_seeds_depend_on_index_only():
    plan = Plan(100, 10, 10, job_seed=7, prefix="x")
    whole = plan.seeds(0, 100)
    pieces = np.concatenate([plan.seeds(0, 33), plan.seeds(33, 34), plan.seeds(34, 100)])
    assert np.array_equal(whole, pieces)
    assert len(set(whole.tolist())) == 100
    other = Plan(100, 10, 10, job_seed=8, prefix="x").seeds(0, 100)
    assert not np.any(whole == other)


def test_names_and_keys():
    plan = Plan(2_500_000, 1000, 10, 0, "mnist")
    assert plan.shard_name(12) == "mnist-000012.tar" and plan.num_shards == 2500
    assert sample_key(1_234_567) == "0001234567" and "." not in sample_key(5)
