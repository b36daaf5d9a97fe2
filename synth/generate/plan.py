"""The shard plan: which sample goes in which shard, with which class and seed.

Pure arithmetic, no I/O. Sample i's class and seed depend only on (job seed,
count, classes, i), so any worker, in any order, at any batch size, makes the
same sample i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.models.common import sample_seeds


@dataclass(frozen=True)
class ShardTask:
    """One shard: samples [start, stop) written to ``name``."""

    index: int
    start: int
    stop: int
    name: str

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    """``count`` samples, class-balanced over ``num_classes``, in shards of ``shard_size``."""

    count: int
    shard_size: int
    num_classes: int
    job_seed: int
    prefix: str

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.tar"

    def shards(self) -> list[ShardTask]:
        return [
            ShardTask(k, k * self.shard_size, min(self.count, (k + 1) * self.shard_size), self.shard_name(k))
            for k in range(self.num_shards)
        ]

    def labels(self, start: int, stop: int) -> np.ndarray:
        """Classes of samples [start, stop): sample i gets class i mod K.

        Over the whole plan, class c gets count // K samples, plus one for the
        first count mod K classes: exact counts summing to ``count``, and every
        shard is class-mixed.
        """
        return np.arange(start, stop, dtype=np.int64) % self.num_classes

    def seeds(self, start: int, stop: int) -> np.ndarray:
        return sample_seeds(self.job_seed, np.arange(start, stop))

    def class_counts(self) -> np.ndarray:
        base, extra = divmod(self.count, self.num_classes)
        return np.array([base + (c < extra) for c in range(self.num_classes)], dtype=np.int64)


def sample_key(index: int) -> str:
    """The WebDataset key of sample ``index``: zero-padded digits, no dots."""
    return f"{index:010d}"
