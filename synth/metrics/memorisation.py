"""Memorisation check: how close generated images come to the training images they were learnt from.

Pure math on feature arrays. Each generated image's nearest training images are found in a feature
space; the distances are compared with how close real training images come to one another (each
to its nearest *other* training image). A model that copies its training data puts generated
images much nearer to a training image than real images ever are to each other; the report shows
the closest pairs so a person can see whether they are copies.
"""

from __future__ import annotations

import numpy as np

CHUNK = 1024  # query rows a distance block: CHUNK x len(reference) float64


def nearest_neighbours(
    query: np.ndarray, reference: np.ndarray, k: int = 3, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (len(query), k): the ``k`` nearest rows of ``reference`` (Euclidean),
    nearest first. ``exclude[i]``: an index of ``reference`` query i may not match (itself)."""
    query, reference = np.asarray(query, np.float64), np.asarray(reference, np.float64)
    k = min(k, len(reference) - (exclude is not None))
    ref_sq = (reference**2).sum(axis=1)
    dists, idxs = [], []
    for start in range(0, len(query), CHUNK):
        q = query[start : start + CHUNK]
        d2 = (q**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2 * q @ reference.T
        if exclude is not None:
            d2[np.arange(len(q)), exclude[start : start + CHUNK]] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        part_d = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(part_d, axis=1)
        idxs.append(np.take_along_axis(part, order, axis=1))
        dists.append(np.sqrt(np.clip(np.take_along_axis(part_d, order, axis=1), 0, None)))
    return np.concatenate(dists), np.concatenate(idxs)


def memorisation(fake: np.ndarray, train: np.ndarray, k: int = 3, num_real: int = 1000, seed: int = 0) -> dict:
    """Nearest training images of every generated one, against the real-to-real baseline.

    Returns {distances, indices} of each generated image's ``k`` nearest training images, and
    figures: the median nearest distance of generated images and of ``num_real`` sampled training
    images (to their nearest other training image), their ratio, and the share of generated images
    nearer to a training image than 99% of training images are to one another (about 1% for a model
    that does not copy; much more when it does).
    """
    dist, idx = nearest_neighbours(fake, train, k)
    sample = np.sort(np.random.default_rng(seed).permutation(len(train))[: min(num_real, len(train))])
    real_dist, _ = nearest_neighbours(train[sample], train, 1, exclude=sample)
    real_nn = real_dist[:, 0]
    p1 = float(np.quantile(real_nn, 0.01))
    median_fake, median_real = float(np.median(dist[:, 0])), float(np.median(real_nn))
    return {
        "distances": dist,
        "indices": idx,
        "nn_distance_median": median_fake,
        "nn_distance_median_real": median_real,
        "nn_distance_ratio": median_fake / median_real if median_real > 0 else None,
        "real_nn_distance_p1": p1,
        "share_nearer_than_real_p1": float((dist[:, 0] < p1).mean()),
        "num_generated": len(fake),
        "num_train": len(train),
        "num_real_baseline": len(sample),
    }
