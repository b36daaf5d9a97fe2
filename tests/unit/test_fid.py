import numpy as np
import pytest
from scipy import linalg

from synth.metrics.fid import features_to_fid, features_to_statistics, frechet_distance


def reference_fid(a, b):
    """Independent reference: sqrt of S1^1/2 S2 S1^1/2 via symmetric eigendecompositions."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    w2 = linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(w2, 0, None)).sum())


@pytest.mark.parametrize("dim", [4, 64])
def test_matches_reference_on_seeded_features(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(2000, dim))
    b = rng.normal(size=(1500, dim)) @ rng.normal(scale=0.3, size=(dim, dim)) + 0.2
    ours = features_to_fid(a, b)
    assert ours == pytest.approx(reference_fid(a, b), rel=1e-6)
    assert ours > 0.5


def test_identical_sets_score_zero():
    a = np.random.default_rng(0).normal(size=(500, 16))
    assert abs(frechet_distance(*features_to_statistics(a), *features_to_statistics(a))) < 1e-6
