"""Nearest neighbours against scipy's cKDTree, and the memorisation figures on real digits."""

import numpy as np
from scipy.spatial import cKDTree

from synth.metrics import memorisation as mem


def test_nearest_neighbours_match_a_kd_tree(monkeypatch):
    monkeypatch.setattr(mem, "CHUNK", 7)  # several blocks, one ragged
    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    d, i = mem.nearest_neighbours(query, ref, k=4)
    d_ref, i_ref = cKDTree(ref).query(query, k=4)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-9)


def test_excluding_itself_finds_the_next_nearest():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(200, 5))
    rows = np.array([3, 50, 199])
    d, i = mem.nearest_neighbours(ref[rows], ref, k=1, exclude=rows)
    _d_ref, i_ref = cKDTree(ref).query(ref[rows], k=2)  # column 0 is the point itself
    np.testing.assert_array_equal(i[:, 0], i_ref[:, 1])
    assert (d[:, 0] > 0).all()


def test_copies_of_training_images_are_flagged():
    """Real digits as features: new digits look like a model that generalises, copies like one that memorises."""
    from synth.data.sources import load_mnist_subset

    rng = np.random.default_rng(2)
    x = load_mnist_subset(None).images.reshape(5000, -1).astype(np.float64)[rng.permutation(5000)]  # all classes
    train, held = x[:4000], x[4000:4500]
    copies = train[rng.choice(4000, 500, replace=False)] + rng.normal(scale=1.0, size=(500, 784))  # near-copies
    fresh = mem.memorisation(held, train, num_real=1000)
    copied = mem.memorisation(copies, train, num_real=1000)
    assert 0.8 < fresh["nn_distance_ratio"] < 1.3 and fresh["share_nearer_than_real_p1"] < 0.05
    assert copied["nn_distance_ratio"] < 0.1 and copied["share_nearer_than_real_p1"] > 0.95
    assert copied["distances"].shape == (500, 3) and (np.diff(copied["distances"], axis=1) >= 0).all()
