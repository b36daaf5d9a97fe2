"""Kernel Inception Distance and Inception Score: pure math on feature and logit arrays.

KID (Binkowski et al., 2018): the unbiased estimate of the squared MMD between real and generated
features under the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
subsets of equal size; its standard deviation over the subsets says how far to trust it. Unlike
FID it is unbiased in the sample count, so small-sample figures compare fairly.

Inception Score (Salimans et al., 2016): exp(E_x KL(p(y|x) || p(y))) from a classifier's logits,
over splits; high when each image is confidently one class and the classes are varied. It needs a
network with a class head: the report says which one served.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size samples under (x.y / d + 1)^3."""
    m, d = len(x), x.shape[1]
    if len(y) != m or m < 2:
        raise ValueError(f"need two samples of the same size >= 2 (got {len(x)} and {len(y)})")
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict[str, float | int]:
    """{kid, kid_std, subsets, subset_size}: MMD^2 over ``subsets`` random pairs of subsets.

    ``subset_size`` is capped at the smaller sample; each subset is drawn without replacement with
    a generator seeded by ``seed``, so the figure is reproducible.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        r = real[rng.choice(len(real), size, replace=False)]
        f = fake[rng.choice(len(fake), size, replace=False)]
        mmds[i] = polynomial_mmd2(r, f)
    return {"kid": float(mmds.mean()), "kid_std": float(mmds.std()), "subsets": subsets, "subset_size": size}


def inception_score(logits: np.ndarray, splits: int = 10, shuffle_seed: int | None = 0) -> dict[str, float | int]:
    """{is, is_std, splits}: exp of the mean KL between p(y|x) and the split's marginal p(y).

    ``logits``: (N, K) class scores. They are shuffled (seeded) and cut into ``splits`` equal parts:
    images that come sorted by class must not make a split of one class. ``shuffle_seed=None``
    keeps the given order.
    """
    logits = np.asarray(logits, np.float64)
    n = len(logits)
    if n < splits:
        raise ValueError(f"need at least {splits} samples for {splits} splits (got {n})")
    if shuffle_seed is not None:
        logits = logits[np.random.default_rng(shuffle_seed).permutation(n)]
    log_p = log_softmax(logits, axis=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = np.log(np.exp(part).mean(axis=0))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores)), "splits": splits}
