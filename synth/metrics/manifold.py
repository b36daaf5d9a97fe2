"""Precision, recall, density and coverage of generated features against real ones (k-NN manifolds).

Pure math on float arrays (N x D real, M x D generated), no network. Each real point's ball has
the radius of its k-th nearest other real point; each generated point's likewise among the
generated ones.

  precision  share of generated points inside some real ball (are the images realistic?)
  recall     share of real points inside some generated ball (is the data's variety covered?)
  density    generated points' real-ball memberships, averaged and divided by k (~1 when alike)
  coverage   share of real points whose ball holds a generated point: the figure that falls
             when a model collapses onto a few modes, and that outliers cannot inflate

Precision and recall: Kynkaanniemi et al., 2019; density and coverage: Naeem et al., 2020.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def kth_neighbour_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    distances = cdist(features, features)
    return np.partition(distances, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def features_to_prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """{precision, recall, density, coverage} of ``fake`` against ``real`` with k-NN balls."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} real and generated samples (got {len(real)} and {len(fake)})")
    r_real = kth_neighbour_radii(real, k)
    r_fake = kth_neighbour_radii(fake, k)
    d = cdist(real, fake)  # real x fake
    in_real_ball = d < r_real[:, None]
    return {
        "precision": float(in_real_ball.any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float(in_real_ball.sum() / (k * len(fake))),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }
