"""The shard plan: which sample goes in which shard, from which source image, of which class.

Pure arithmetic, no I/O, O(classes) memory whatever the count. Sample i is
copy ``i % copies`` of source image ``i // copies``; a source's class and
seed depend only on (job seed, the class counts, its index), so any worker,
in any order, at any batch size, makes the same sample i.

With input images (``generate.inputs``), source s is made from input ``s // per_input`` and keeps its
class; the inputs are read only where a caller asks for their range (``InputSet``).

Otherwise classes are spread over the sources by a fixed permutation: source s takes
position ``(s * stride) mod S`` in the list of S labels sorted by class, with
``stride`` near S / golden ratio and coprime with S. That is a bijection, so
the per-class counts are exact, and a low-discrepancy one, so every shard
holds close to the overall class shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.errors import SynthError
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
class Samples:
    """Samples [start, stop) of a plan, column by column."""

    index: np.ndarray
    source: np.ndarray
    copy: np.ndarray
    label: np.ndarray
    seed: np.ndarray


@dataclass(frozen=True)
class Plan:
    """``count`` samples with exact per-class counts, ``copies`` per source image, in shards of ``shard_size``."""

    class_counts: tuple[int, ...]
    shard_size: int
    job_seed: int
    prefix: str
    copies: int = 1
    inputs: Any = None  # an InputSet (synth.generate.inputs): source s is made from input s // per_input
    per_input: int = 1

    def __post_init__(self) -> None:
        if any(c % self.copies for c in self.class_counts):
            raise ValueError("every class count must be a multiple of copies")
        if self.inputs is not None and self.num_sources != self.inputs.count * self.per_input:
            raise ValueError("with inputs, the plan makes per_input sources from every input")

    def identity(self) -> dict[str, Any]:
        """What defines the plan, for its digest: its fields, the inputs by their identity (and a plan
        without inputs keeps the digest it had before inputs existed)."""
        fields = {
            "class_counts": list(self.class_counts),
            "shard_size": self.shard_size,
            "job_seed": self.job_seed,
            "prefix": self.prefix,
            "copies": self.copies,
        }
        if self.inputs is not None:
            fields.update(inputs=self.inputs.identity, per_input=self.per_input)
        return fields

    def input_of(self, source: np.ndarray) -> np.ndarray:
        """The input each source is made from (int64)."""
        return np.asarray(source, dtype=np.int64) // self.per_input

    @property
    def count(self) -> int:
        return sum(self.class_counts)

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    @property
    def num_sources(self) -> int:
        return self.count // self.copies

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.tar"

    def shard(self, k: int) -> ShardTask:
        return ShardTask(k, k * self.shard_size, min(self.count, (k + 1) * self.shard_size), self.shard_name(k))

    def shards(self):
        """The shard tasks, lazily (a million shards cost no memory until used)."""
        return (self.shard(k) for k in range(self.num_shards))

    @property
    def stride(self) -> int:
        """The permutation's step: the integer coprime with S nearest above S / golden ratio."""
        s = self.num_sources
        a = max(1, round(s * (math.sqrt(5) - 1) / 2))
        while math.gcd(a, s) != 1:
            a += 1
        return a

    def source_labels(self, start: int, stop: int) -> np.ndarray:
        """Classes of source images [start, stop)."""
        if self.inputs is not None:
            if stop <= start:
                return np.zeros(0, dtype=np.int64)
            first, last = start // self.per_input, (stop - 1) // self.per_input + 1
            labels = self.inputs.labels(first, last)
            return np.maximum(labels[np.arange(start, stop) // self.per_input - first], 0)  # unlabelled: 0
        s = self.num_sources
        per_source = np.cumsum(np.asarray(self.class_counts, dtype=np.int64) // self.copies)
        stride = self.stride
        first = (start * stride) % s  # Python ints: no overflow at any size
        offsets = np.arange(stop - start, dtype=np.int64)
        if stop - start > 1 and (stop - start) * stride >= 2**62:
            raise ValueError("range too large for one call; split it")
        positions = (first + offsets * stride) % s
        return np.searchsorted(per_source, positions, side="right").astype(np.int64)

    def source_seeds(self, start: int, stop: int) -> np.ndarray:
        return sample_seeds(self.job_seed, np.arange(start, stop))

    def samples(self, start: int, stop: int) -> Samples:
        index = np.arange(start, stop, dtype=np.int64)
        source = index // self.copies
        s0, s1 = (int(source[0]), int(source[-1]) + 1) if len(index) else (0, 0)
        labels, seeds = self.source_labels(s0, s1), self.source_seeds(s0, s1)
        return Samples(index, source, index % self.copies, labels[source - s0], seeds[source - s0])


def sample_key(index: int) -> str:
    """The WebDataset key of sample ``index``: zero-padded digits, no dots."""
    return f"{index:010d}"


def head_counts(sizes, n: int) -> list[int]:
    """How many leading samples of each shard make the ``n`` evaluated ones (all of them if fewer).

    The same number ``k`` from every shard, the smallest that reaches ``n`` (short shards give all
    they have), and the surplus taken back from the last shards; with fewer samples than shards, one
    each from ``n`` shards spread evenly over the dataset. Spread this way, the evaluated samples
    cover the whole dataset rather than its first shards, and the generation workers that compute
    their features share the work.
    """
    sizes = [int(s) for s in sizes]
    n = min(max(n, 0), sum(sizes))
    if n == 0:
        return [0] * len(sizes)
    nonempty = [i for i, s in enumerate(sizes) if s]
    if n <= len(nonempty):
        counts = [0] * len(sizes)
        for j in range(n):
            counts[nonempty[j * len(nonempty) // n]] = 1
        return counts
    k = -(-n // len(sizes))
    while sum(min(s, k) for s in sizes) < n:
        k += 1
    counts = [min(s, k) for s in sizes]
    surplus = sum(counts) - n
    for i in reversed(range(len(counts))):
        if surplus == 0:
            break
        cut = min(surplus, counts[i] - min(counts[i], k - 1))
        counts[i] -= cut
        surplus -= cut
    return counts


def apportion(total: int, weights) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder; ties to the lower index)."""
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError("apportion needs total >= 0 and non-negative weights with a positive sum")
    exact = total * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    order = sorted(range(len(w)), key=lambda k: (-(exact[k] - base[k]), k))
    for k in order[: total - int(base.sum())]:
        base[k] += 1
    return base.tolist()


def resolve_class_counts(
    classes,
    count: int,
    count_given: bool,
    copies: int,
    class_names: list[str],
    real_counts: list[int] | None = None,
) -> tuple[int, ...]:
    """The exact number of samples per class that ``generate.classes`` asks for.

    ``classes`` is the spec's value: "balanced", "match_real", a ClassCounts or
    a ClassProportions. Counts are in samples, copies included, so each must be
    a multiple of ``copies``. Raises SynthError naming the field.
    """
    k = len(class_names)
    counts = getattr(classes, "counts", None)
    if counts is not None:
        per_class = [0] * k
        for name, n in counts.items():
            per_class[_class_index(name, class_names, "generate.classes.counts")] += n
        total = sum(per_class)
        if count_given and total != count:
            raise SynthError(f"generate.classes.counts: they sum to {total:,}, but generate.count is {count:,}")
        if total == 0:
            raise SynthError("generate.classes.counts: they sum to 0")
        bad = [class_names[c] for c, n in enumerate(per_class) if n % copies]
        if bad:
            raise SynthError(f"generate.classes.counts: class {bad[0]!r} is not a multiple of augment.copies={copies}")
        return tuple(per_class)
    if count % copies:
        raise SynthError(f"generate.count: {count:,} is not a multiple of augment.copies={copies}")
    sources = count // copies
    proportions = getattr(classes, "proportions", None)
    if proportions is not None:
        weights = [0.0] * k
        for name, w in proportions.items():
            weights[_class_index(name, class_names, "generate.classes.proportions")] += w
    elif classes == "match_real":
        if not real_counts or len(real_counts) != k:
            raise SynthError("generate.classes: match_real needs the real data's class counts")
        weights = list(real_counts)
    else:
        weights = [1.0] * k
    return tuple(n * copies for n in apportion(sources, weights))


def _class_index(name: str, class_names: list[str], field: str) -> int:
    """A class given by name, or by index when no class has that name."""
    name = str(name)
    if name in class_names:
        return class_names.index(name)
    if str(name).lstrip("-").isdigit() and 0 <= int(name) < len(class_names):
        return int(name)
    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
    raise SynthError(f"{field}: unknown class {name!r} (classes: {shown}; or an index 0-{len(class_names) - 1})")
