"""Precision/recall/density/coverage against the authors' reference (prdc), and the collapse it exposes."""

import contextlib
import io

import numpy as np
import pytest

from synth.metrics.manifold import features_to_prdc


@pytest.mark.parametrize("seed,shift", [(0, 0.0), (1, 0.5), (2, 2.0)])
def test_matches_reference_prdc(seed, shift):
    from prdc import compute_prdc

    rng = np.random.default_rng(seed)
    real = rng.normal(size=(300, 16)).astype(np.float32)
    fake = (rng.normal(size=(250, 16)) + shift).astype(np.float32)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        expected = compute_prdc(real, fake, nearest_k=5)
    ours = features_to_prdc(real, fake, k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(expected[key]), abs=1e-6), key


def test_collapse_shows_in_coverage_and_recall_not_precision():
    """Ten modes; a 'collapsed' generator draws from two of them. Its samples are realistic (high
    precision) but cover a fifth of the data: coverage and recall fall, precision does not."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8.0, size=(10, 8))
    real = centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 8))
    healthy = centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 8))
    collapsed = centres[rng.integers(0, 2, 1000)] + rng.normal(size=(1000, 8))
    good, bad = features_to_prdc(real, healthy), features_to_prdc(real, collapsed)
    assert good["coverage"] > 0.9 and bad["coverage"] < 0.3
    assert good["recall"] > 0.9 and bad["recall"] < 0.3
    assert bad["precision"] > 0.9


def test_needs_more_than_k_samples():
    with pytest.raises(ValueError, match="more than k=5"):
        features_to_prdc(np.zeros((5, 3)), np.zeros((10, 3)))


def test_evaluation_figures_skip_tiny_counts_and_cap_large_ones():
    from synth.metrics.evaluate import PRDC_MAX, manifold_figures

    rng = np.random.default_rng(0)
    assert manifold_figures(rng.normal(size=(5, 4)), rng.normal(size=(50, 4)))["prdc_domain"] is None
    figures = manifold_figures(rng.normal(size=(PRDC_MAX + 10, 2)), rng.normal(size=(40, 2)))
    assert figures["prdc_num_samples"] == [PRDC_MAX, 40] and figures["prdc_domain_real_vs_real"] is not None
