"""What each stage returns: a typed result the CLI prints and the report renders.

The train and generate results are also stored under --out (``layout.SUMMARIES``) as the JSON of
``to_json()``, the same keys as ever, and read back with ``from_json`` by later commands.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """What ``synth train`` did. A run that found its checkpoint at ``train.steps`` is ``skipped``
    and has only ``step`` and ``data``; the figures of a run that trained come from the checkpoint
    state that rank 0 wrote (None where it did not record them)."""

    step: int | None
    data: dict[str, Any]  # what the model learnt from: source, images, classes (for the dataset card)
    skipped: bool = False
    fixed: bool = False  # a member with nothing to train: its fixed nets were exported
    world_size: int | None = None
    replica_max_diff: float | None = None  # largest difference between the ranks' weights (0: in sync)
    weights: str | None = None  # the resumable checkpoint's file name
    nodes: list[str | None] | None = None  # each rank's Ray node
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary's dict: figures that were not recorded left out, ``skipped`` only when true."""
        found = {k: v for k, v in asdict(self).items() if v is not None}
        for flag in ("skipped", "fixed"):
            if not found[flag]:
                del found[flag]
        return found

    @classmethod
    def from_json(cls, found: dict[str, Any]) -> TrainResult:
        return cls(**{"data": {}, **_known_fields(cls, found)})


@dataclass(frozen=True)
class GenerateResult:
    """What ``synth generate`` made: the plan's totals, what this run wrote, where, and how fast."""

    count: int
    class_counts: list[int]
    copies: int
    shards: int
    bytes: int
    generated: int  # samples written by this run (shards already done are skipped)
    skipped_shards: int
    features_for_report: int  # samples whose Inception features the workers computed
    nodes: int  # the nodes that wrote shards in this run
    seconds: float
    images_per_s: float
    location: str  # the dataset store
    manifest: str
    worker_peak_rss_mb: float
    driver_peak_rss_mb: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, found: dict[str, Any]) -> GenerateResult:
        return cls(**_known_fields(cls, found))


def _known_fields(cls: type, found: dict[str, Any]) -> dict[str, Any]:
    """``found``'s values of ``cls``'s fields; for those it lacks, the field's default, or None (a
    summary that an older version wrote), so a report on an older --out still renders."""
    return {f.name: found.get(f.name, None if f.default is MISSING else f.default) for f in fields(cls)}


@dataclass(frozen=True)
class EvaluateResult:
    """What ``synth evaluate`` judged: the figures (report.json's ``figures``, and the grids the
    report draws) and where the report is."""

    figures: dict[str, Any]
    report: Path  # report.html
