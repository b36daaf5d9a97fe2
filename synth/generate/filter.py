"""The quality filter (``generate.filter``): draw candidates per sample, keep one a classifier accepts.

For source image ``s`` of class ``c``, candidate ``j`` is the model's image for seed
``candidate_seed(job seed, s, j)`` (candidate 0 is the unfiltered sample). Candidates come in rounds
of ``candidates``; a candidate is accepted when the classifier's top class is ``c`` with probability
at least ``min_confidence``. After a round in which some candidate was accepted, the kept one is the
accepted candidate with the highest ``min(p_c, cap)``, the lowest ``j`` on ties: with ``cap`` below
1 the most confident images do not always win, so the kept set is not only the easiest ones. A
source none of whose candidates is accepted within ``max_candidates`` is a failure: the model does
not make that class well enough for this filter, and the shard fails with one line naming it.

Each choice depends on the source's own candidates only, so the kept image is a function of
(job seed, s): not of batch sizes, workers or resumes. The sampler and the classifier are passed
in as plain functions of arrays (``draw``, ``judge``): no Ray, no devices here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from synth.errors import SynthError

JUDGE_ROWS = 64  # every classifier forward has this many rows (padded): its decisions never depend on the batch
REJECTS_PER_CLASS = 8  # rejected candidates kept per class and shard, for the report's grid


def candidate_seeds(job_seed: int, sources: np.ndarray, source_seeds: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The seed of candidate ``j`` of each source: its plan seed for j = 0, else one from (job seed, source, j).

    uint64 below 2**63, like the plan's seeds (numpy SeedSequence, spawn key (source, j)).
    """
    out = np.asarray(source_seeds, dtype=np.uint64).copy()
    for k in np.flatnonzero(np.asarray(j) != 0):
        words = np.random.SeedSequence(entropy=job_seed, spawn_key=(int(sources[k]), int(j[k]))).generate_state(
            2, np.uint32
        )
        out[k] = ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)
    return out


@dataclass(frozen=True)
class Picks:
    """What the filter kept for each source, in order: the classifier's probability of the asked class,
    how many candidates were drawn, which candidate was kept and its seed."""

    score: np.ndarray  # float32
    drawn: np.ndarray  # int32
    candidate: np.ndarray  # int32
    seed: np.ndarray  # uint64

    @classmethod
    def concat(cls, parts: list[Picks]) -> Picks:
        if not parts:
            return cls(np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.uint64))
        return cls(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in ("score", "drawn", "candidate", "seed"))
        )

    def __getitem__(self, part: slice) -> Picks:
        return Picks(self.score[part], self.drawn[part], self.candidate[part], self.seed[part])

    def record(self, k: int) -> dict:
        """The ``filter`` entry of source ``k``'s samples' ``.json``."""
        return {
            "score": round(float(self.score[k]), 6),
            "drawn": int(self.drawn[k]),
            "candidate": int(self.candidate[k]),
            "seed": int(self.seed[k]),
        }


@dataclass
class FilterLog:
    """What one shard's filter rejected: every candidate not kept, with its score, its classes and
    whether the classifier accepted it (then it lost on confidence to the one kept), and the first
    ``REJECTS_PER_CLASS`` images of each class asked for that it did not accept. Also the picks, for
    the manifest."""

    num_classes: int
    scores: list[np.ndarray] = field(default_factory=list)  # rejected: probability of the asked class
    asked: list[np.ndarray] = field(default_factory=list)
    seen: list[np.ndarray] = field(default_factory=list)  # rejected: the classifier's top class
    accepted: list[np.ndarray] = field(default_factory=list)  # rejected but accepted: outranked by the kept one
    images: list[np.ndarray] = field(default_factory=list)
    image_asked: list[int] = field(default_factory=list)
    image_scores: list[float] = field(default_factory=list)
    picks: list[Picks] = field(default_factory=list)

    def reject(self, images: np.ndarray, asked: np.ndarray, probs: np.ndarray, accepted: np.ndarray) -> None:
        if not len(images):
            return
        score = probs[np.arange(len(asked)), asked]
        self.scores.append(score.astype(np.float32))
        self.asked.append(asked.astype(np.int16))
        self.seen.append(probs.argmax(1).astype(np.int16))
        self.accepted.append(accepted.astype(bool))
        have = np.bincount(np.asarray(self.image_asked, dtype=np.int64), minlength=self.num_classes)
        for k in np.flatnonzero(~accepted):  # the grid shows what the classifier turned down
            c = int(asked[k])
            if have[c] < REJECTS_PER_CLASS:
                have[c] += 1
                self.images.append(images[k])
                self.image_asked.append(c)
                self.image_scores.append(float(score[k]))

    def kept(self) -> Picks:
        """The picks of every source so far, concatenated."""
        return Picks.concat(self.picks)

    def to_bytes(self) -> bytes:
        """The log as an .npz (numpy arrays only: loads without pickle)."""

        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        arrays = {
            "rejected_score": cat(self.scores, np.float32),
            "rejected_asked": cat(self.asked, np.int16),
            "rejected_seen": cat(self.seen, np.int16),
            "rejected_accepted": cat(self.accepted, bool),
            "image_asked": np.asarray(self.image_asked, np.int16),
            "image_score": np.asarray(self.image_scores, np.float32),
        }
        if self.images:
            arrays["images"] = np.stack(self.images)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()


def read_filter_log(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def choose(
    draw: Callable[[np.ndarray, np.ndarray], np.ndarray],
    judge: Callable[[np.ndarray], np.ndarray],
    spec,
    job_seed: int,
    sources: np.ndarray,
    seeds: np.ndarray,
    labels: np.ndarray,
    log: FilterLog,
) -> tuple[np.ndarray, Picks, np.ndarray]:
    """Filter one batch of sources: (kept uint8 NHWC images, their Picks, the indices of sources with none).

    ``draw(seeds, labels)``: uint8 NHWC images, one per (seed, label), each a function of its own row;
    ``judge(images)``: class probabilities (N, K), each a function of its own row. ``spec``: a FilterSpec.
    A failed source's image is black and its pick has candidate -1.
    """
    n = len(sources)
    kept: np.ndarray | None = None
    score = np.zeros(n, np.float32)
    drawn = np.zeros(n, np.int32)
    candidate = np.full(n, -1, np.int32)
    kept_seed = np.zeros(n, np.uint64)
    todo = np.arange(n)
    for first in range(0, spec.max_candidates, spec.candidates):
        if not len(todo):
            break
        js = np.arange(first, min(first + spec.candidates, spec.max_candidates))
        rows, jj = np.repeat(todo, len(js)), np.tile(js, len(todo))
        cand_seeds = candidate_seeds(job_seed, sources[rows], seeds[rows], jj)
        images = draw(cand_seeds, labels[rows])
        probs = judge(images)
        asked = probs[np.arange(len(rows)), labels[rows]]
        accepted = (probs.argmax(1) == labels[rows]) & (asked >= spec.min_confidence)
        rank = np.where(accepted, np.minimum(asked, spec.cap), -np.inf).reshape(len(todo), len(js))
        best = rank.argmax(1)  # the first of equals: the lowest j
        settled = np.isfinite(rank[np.arange(len(todo)), best])
        drawn[todo] += len(js)
        pick = np.flatnonzero(settled) * len(js) + best[settled]
        if kept is None:
            kept = np.zeros((n, *images.shape[1:]), np.uint8)
        won = todo[settled]
        kept[won], score[won], candidate[won], kept_seed[won] = images[pick], asked[pick], jj[pick], cand_seeds[pick]
        lost = np.ones(len(rows), bool)
        lost[pick] = False
        log.reject(images[lost], labels[rows][lost], probs[lost], accepted[lost])
        todo = todo[~settled]
    picks = Picks(score, drawn, candidate, kept_seed)
    log.picks.append(picks)
    return kept, picks, todo


def filtered_batches(
    draw,
    judge,
    spec,
    job_seed: int,
    sources: np.ndarray,
    seeds: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    log: FilterLog,
    class_names: tuple[str, ...],
    shard_name: str,
) -> Iterator[tuple[np.ndarray, Picks]]:
    """``choose`` over the shard's sources: (images, picks) per batch of ``batch_size``.

    ``choose`` runs on groups of ``JUDGE_ROWS`` sources counted from the shard's first, whatever
    ``batch_size``: every forward of the sampler and the classifier then holds the same rows at any
    batch size, so even a classifier whose outputs move in the last bits with the other rows of its
    forward makes the same choices. Raises SynthError naming the class, the sample and what the shard
    kept, when a source finds no accepted candidate within ``spec.max_candidates``.
    """
    held: list[tuple[np.ndarray, Picks]] = []
    count = 0
    for start in range(0, len(sources), JUDGE_ROWS):
        part = slice(start, start + JUDGE_ROWS)
        images, picks, failed = choose(draw, judge, spec, job_seed, sources[part], seeds[part], labels[part], log)
        if len(failed):
            raise unfilled(spec, labels, start, failed, log, class_names, shard_name, int(sources[part][failed[0]]))
        held.append((images, picks))
        count += len(images)
        last = start + JUDGE_ROWS >= len(sources)
        while count >= batch_size or (last and count):
            images = np.concatenate([h[0] for h in held])
            picks = Picks.concat([h[1] for h in held])
            yield images[:batch_size], picks[:batch_size]
            held = [(images[batch_size:], picks[batch_size:])]
            count = len(held[0][0])


def unfilled(spec, labels, start, failed, log, class_names, shard_name, source) -> SynthError:
    """The one line of a filter that cannot fill a class."""
    c = int(labels[start + failed[0]])
    picks = log.kept()
    asked = labels[: len(picks.candidate)]
    kept = int(((asked == c) & (picks.candidate >= 0)).sum())
    wanted = int((labels == c).sum())
    return SynthError(
        f"generate.filter: class {class_names[c]!r} cannot be filled: none of the {spec.max_candidates} candidates "
        f"of source image {source} was accepted by the classifier (top class {class_names[c]!r}, probability >= "
        f"{spec.min_confidence}); shard {shard_name} kept {kept} of its {wanted} samples of that class so far. The "
        "model may not make this class: train longer, or raise generate.filter.max_candidates or lower "
        "min_confidence. Finished shards are kept."
    )


# ---- the classifier ("judge") ---------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeFile:
    """A classifier to filter with, as the bytes shipped to every shard task, and what it is."""

    data: bytes
    kind: str  # "safetensors" (a synth classifier) or "torchscript"
    digest: str
    description: str


def judge_kind(data: bytes) -> str:
    """TorchScript archives are zip files; anything else is read as safetensors."""
    return "torchscript" if data[:2] == b"PK" else "safetensors"


def load_judge(data: bytes, device: str = "cpu") -> tuple[torch.nn.Module, list[str] | None]:
    """(the classifier in eval mode on ``device``, its class names if the file gives them)."""
    if judge_kind(data) == "torchscript":
        import warnings

        extra = {"class_names.json": ""}
        with warnings.catch_warnings():  # torch deprecates TorchScript, which is still what users export
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=extra)
        names = json.loads(extra["class_names.json"]) if extra["class_names.json"] else None
        return module.eval(), names
    from synth.metrics.classifier import import_classifier

    model, names = import_classifier(data)
    return model.to(device).eval(), names


def judge_probs(model: torch.nn.Module, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities (N, K) float64 of uint8 NHWC images, ``JUDGE_ROWS`` rows a forward (padded)."""
    from synth.models.common import from_uint8

    out = []
    with torch.inference_mode():
        for i in range(0, len(images), JUDGE_ROWS):
            chunk = images[i : i + JUDGE_ROWS]
            padded = np.zeros((JUDGE_ROWS, *images.shape[1:]), np.uint8)
            padded[: len(chunk)] = chunk
            logits = model(from_uint8(padded).to(device)).float()
            out.append(torch.softmax(logits, dim=1)[: len(chunk)].double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def check_judge(data: bytes, where: str, class_names: list[str], resolution: int, channels: int) -> None:
    """One line if the classifier cannot be read, or does not give one logit per class of the job."""
    try:
        model, names = load_judge(data)
        probs = judge_probs(model, np.zeros((2, resolution, resolution, channels), np.uint8))
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SynthError(
            f"generate.filter.classifier: {where}: cannot run it on a {resolution}x{resolution}, "
            f"{channels}-channel batch ({first})"
        ) from None
    k = len(class_names)
    shown = ", ".join(class_names[:10]) + (", ..." if k > 10 else "")
    if probs.shape[1] != k:
        raise SynthError(
            f"generate.filter.classifier: {where} gives {probs.shape[1]} class scores, but the job has "
            f"{k} classes ({shown})"
        )
    if names is not None and list(names) != list(class_names):
        raise SynthError(
            f"generate.filter.classifier: {where} was trained on classes {', '.join(map(str, names[:10]))}"
            f"{', ...' if len(names) > 10 else ''}, but the job's are {shown}"
        )
