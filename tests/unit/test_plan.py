import itertools

import numpy as np
import pytest

from synth.errors import SynthError
from synth.generate.plan import Plan, apportion, resolve_class_counts, sample_key
from synth.spec import ClassCounts, ClassProportions

NAMES = [str(c) for c in range(10)]


def balanced(count, k, copies=1):
    return resolve_class_counts("balanced", count, True, copies, [str(c) for c in range(k)])


def labels_of(plan):
    return np.concatenate([plan.samples(s.start, s.stop).label for s in plan.shards()])


@pytest.mark.parametrize("count,shard_size,k", [(10_000, 1_000, 10), (1_003, 100, 10), (7, 3, 4), (5, 10, 10)])
def test_exact_counts_and_full_cover(count, shard_size, k):
    plan = Plan(balanced(count, k), shard_size, job_seed=0, prefix="x")
    shards = list(plan.shards())
    assert shards[0].start == 0 and shards[-1].stop == count == plan.count
    assert all(a.stop == b.start for a, b in itertools.pairwise(shards))
    assert all(0 < s.size <= shard_size for s in shards)
    counts = np.bincount(labels_of(plan), minlength=k)
    assert counts.tolist() == list(plan.class_counts) and counts.sum() == count
    assert counts.max() - counts.min() <= 1


def test_shards_are_class_mixed():
    """The label permutation spreads each class evenly: every shard is close to the overall shares."""
    plan = Plan(balanced(100_000, 10), 1_000, job_seed=0, prefix="x")
    for s in list(plan.shards())[::7]:
        counts = np.bincount(plan.samples(s.start, s.stop).label, minlength=10)
        assert counts.min() >= 95 and counts.max() <= 105, counts


def test_explicit_counts_exact_and_uneven():
    counts = resolve_class_counts(ClassCounts(counts={"3": 700, "0": 50, 9: 250}), 10_000, False, 1, NAMES)
    assert counts == (50, 0, 0, 700, 0, 0, 0, 0, 0, 250)
    plan = Plan(counts, 64, job_seed=1, prefix="x")
    assert np.bincount(labels_of(plan), minlength=10).tolist() == list(counts)


def test_counts_by_name_and_errors():
    names = ["cat", "dog"]
    assert resolve_class_counts(ClassCounts(counts={"dog": 3, "cat": 1}), 4, True, 1, names) == (1, 3)
    with pytest.raises(SynthError, match="generate.classes.counts: unknown class 'cow'"):
        resolve_class_counts(ClassCounts(counts={"cow": 3}), 3, True, 1, names)
    with pytest.raises(SynthError, match="sum to 4, but generate.count is 10"):
        resolve_class_counts(ClassCounts(counts={"dog": 3, "cat": 1}), 10, True, 1, names)
    with pytest.raises(SynthError, match="not a multiple of augment.copies=2"):
        resolve_class_counts(ClassCounts(counts={"dog": 3, "cat": 1}), 4, False, 2, names)
    with pytest.raises(SynthError, match="generate.count: 5 is not a multiple of augment.copies=2"):
        resolve_class_counts("balanced", 5, True, 2, names)


def test_proportions_and_match_real_sum_exactly():
    p = resolve_class_counts(ClassProportions(proportions={"0": 0.5, "1": 0.3, "2": 0.2}), 1001, True, 1, NAMES)
    assert sum(p) == 1001 and p[:3] == (501, 300, 200) and set(p[3:]) == {0}
    real = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # MNIST train
    m = resolve_class_counts("match_real", 60_000, True, 1, NAMES, real)
    assert m == tuple(real)
    m = resolve_class_counts("match_real", 1_000, True, 1, NAMES, real)
    assert sum(m) == 1000 and m[1] == 112 and m[5] == 90


def test_apportion_is_largest_remainder():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0, 2, 1]) == [0, 5, 2]
    assert sum(apportion(999_999, np.arange(1, 101))) == 999_999


def test_copies_share_source_class_and_seed():
    plan = Plan(balanced(60, 10, copies=3), 7, job_seed=3, prefix="x", copies=3)
    s = plan.samples(0, 60)
    assert plan.num_sources == 20 and s.source.tolist() == [i // 3 for i in range(60)]
    assert s.copy.tolist() == [i % 3 for i in range(60)]
    for a in range(0, 60, 3):
        assert len(set(s.label[a : a + 3])) == 1 and len(set(s.seed[a : a + 3])) == 1
    assert np.bincount(s.label, minlength=10).tolist() == [6] * 10


def test_samples_depend_on_index_only():
    plan = Plan(balanced(100, 10), 10, job_seed=7, prefix="x")
    whole = plan.samples(0, 100)
    pieces = [plan.samples(0, 33), plan.samples(33, 34), plan.samples(34, 100)]
    for field in ("seed", "label", "source"):
        assert np.array_equal(getattr(whole, field), np.concatenate([getattr(p, field) for p in pieces]))
    assert len(set(whole.seed.tolist())) == 100
    other = Plan(balanced(100, 10), 10, job_seed=8, prefix="x").samples(0, 100).seed
    assert not np.any(whole.seed == other)


def test_huge_plan_is_lazy_and_exact():
    """A billion samples: the plan costs O(classes) memory; any range is computed directly."""
    plan = Plan(balanced(1_000_000_000, 10), 1000, job_seed=0, prefix="big")
    assert plan.num_shards == 1_000_000
    last = plan.shard(plan.num_shards - 1)
    s = plan.samples(last.start, last.stop)
    assert s.index[-1] == 999_999_999 and set(np.bincount(s.label, minlength=10)) <= set(range(90, 111))


def test_names_and_keys():
    plan = Plan(balanced(2_500_000, 10), 1000, 0, "mnist")
    assert plan.shard_name(12) == "mnist-000012.tar" and plan.num_shards == 2500
    assert sample_key(1_234_567) == "0001234567" and "." not in sample_key(5)
