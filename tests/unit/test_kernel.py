"""KID and Inception Score against independent implementations (torch-fidelity, clean-fid)."""

import numpy as np
import pytest
import torch

from synth.metrics.fid import features_to_fid, per_class_fid
from synth.metrics.kernel import inception_score, kernel_inception_distance, polynomial_mmd2


def _features(seed, n=400, dim=32, shift=0.0):
    """Samples of one fixed correlated Gaussian (the same for every seed), shifted by ``shift``."""
    mix = np.random.default_rng(1234).normal(scale=0.4, size=(dim, dim))
    return np.random.default_rng(seed).normal(size=(n, dim)) @ mix + shift


def test_mmd_matches_torch_fidelity():
    from torch_fidelity.metric_kid import kernel_poly, mmd2

    x, y = _features(0), _features(1, shift=0.3)
    kw = {"kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}
    reference = mmd2(kernel_poly(x, x, **kw), kernel_poly(x, y, **kw), kernel_poly(y, y, **kw))
    assert polynomial_mmd2(x, y) == pytest.approx(reference, rel=1e-10)
    assert reference > 0.01


def test_kid_over_all_samples_matches_clean_fid_and_torch_fidelity():
    """One subset holding every sample removes the sampling: all three must then agree exactly."""
    from cleanfid.fid import kernel_distance
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    x, y = _features(2), _features(3, shift=0.2)
    ours = kernel_inception_distance(x, y, subsets=1, subset_size=len(x))
    tf = kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1, kid_subset_size=len(x), verbose=False
    )[KEY_METRIC_KID_MEAN]
    assert ours["kid"] == pytest.approx(tf, rel=1e-10)
    assert ours["kid"] == pytest.approx(kernel_distance(x, y, num_subsets=1, max_subset_size=len(x)), rel=1e-10)
    assert ours["kid_std"] == 0.0 and ours["subset_size"] == len(x)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_gap():
    a, b = _features(4, n=600), _features(5, n=600)
    same = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    apart = kernel_inception_distance(a, _features(6, n=600, shift=0.5), subsets=20, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-9
    assert apart["kid"] > 10 * max(same["kid_std"], 1e-6) and apart["kid_std"] > 0


def test_kid_is_reproducible_and_caps_the_subset():
    x, y = _features(7, n=150), _features(8, n=120)
    first, again = (
        kernel_inception_distance(x, y, subsets=5, seed=3),
        kernel_inception_distance(x, y, subsets=5, seed=3),
    )
    assert first == again and first["subset_size"] == 120


def test_inception_score_matches_torch_fidelity():
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    logits = np.random.default_rng(9).normal(scale=3.0, size=(1000, 10))
    ours = inception_score(logits, splits=10, shuffle_seed=None)
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    assert ours["is"] == pytest.approx(ref[KEY_METRIC_ISC_MEAN], rel=1e-10)
    assert ours["is_std"] == pytest.approx(ref[KEY_METRIC_ISC_STD], rel=1e-8)


def test_inception_score_bounds():
    """Confident and uniform over K classes: IS -> K; one class for everything: IS = 1."""
    eye = np.tile(np.eye(10) * 50.0, (50, 1))
    assert inception_score(eye, shuffle_seed=None)["is"] == pytest.approx(10.0, rel=1e-6)  # each split: 5 of each class
    assert inception_score(np.tile([50.0] + [0.0] * 9, (500, 1)))["is"] == pytest.approx(1.0, abs=1e-9)


def test_per_class_fid_finds_the_bad_class():
    rng = np.random.default_rng(10)
    real = rng.normal(size=(600, 8))
    labels = np.repeat(np.arange(3), 200)
    fake = rng.normal(size=(600, 8))
    fake[labels == 2] += 2.0  # class 2 drawn badly
    fids = per_class_fid(real, labels, fake, labels, num_classes=4)
    assert fids[3] is None  # no samples of class 3
    assert fids[2] > 10 * max(fids[0], fids[1])
    assert fids[0] == pytest.approx(features_to_fid(real[:200], fake[:200]))


def test_inception_score_does_not_depend_on_class_order():
    """Real images often come sorted by class: unshuffled splits of one class each would score ~1."""
    logits = np.repeat(np.eye(10) * 20.0, 100, axis=0)  # 100 confident images a class, sorted
    assert inception_score(logits, shuffle_seed=None)["is"] == pytest.approx(1.0, abs=1e-6)
    assert inception_score(logits)["is"] > 9.0
