"""Input images for a family conditioned on an image (``generate.inputs``), read by position.

Input ``k`` is the k-th image of a real data source's split (train or test), or the k-th sample of
an earlier synth dataset in its manifest's order; ``indices`` picks a subset, in its order, and
``limit`` keeps the first ones. A shard task reads only the inputs of its own samples: from a synth
dataset, the manifest's row groups that hold them and the shards those rows name, one at a time, so
its memory does not grow with the number of inputs. A real source is read whole (it is an array in
memory already), once per process.

No torch here: the driver plans with this module and the workers read with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from synth.errors import SynthError


@dataclass(frozen=True)
class Inputs:
    """Some inputs: each one's key, class (-1: unlabelled) and uint8 image, NHWC at the job's size."""

    keys: list[str]
    classes: np.ndarray
    images: np.ndarray


@dataclass(frozen=True)
class InputSet:
    """A job's inputs as plain, picklable data: where they come from and what identifies them.

    ``spec``: the ``generate.inputs`` section as a dict; ``resolution`` and ``channels``: what the
    model takes; ``count``: how many inputs there are (after ``indices`` and ``limit``); ``identity``:
    a digest of what they are (a source's settings, or a synth dataset's manifest), which the shard
    plan's digest holds, so that other inputs make other samples.
    """

    spec: dict[str, Any]
    resolution: int
    channels: int
    count: int
    identity: str
    class_names: tuple[str, ...]

    @property
    def is_dataset(self) -> bool:
        return bool(self.spec.get("dataset"))

    def positions(self, start: int, stop: int) -> np.ndarray:
        """Row positions in the underlying source of inputs [start, stop)."""
        indices = self.spec.get("indices")
        if indices is not None:
            return np.asarray(indices[start:stop], dtype=np.int64)
        return np.arange(start, stop, dtype=np.int64)

    def labels(self, start: int, stop: int) -> np.ndarray:
        """Classes of inputs [start, stop) (int64; -1 for an unlabelled one)."""
        if self.is_dataset:
            return _dataset_rows(self.spec["dataset"], tuple(self.positions(start, stop).tolist()))[1]
        return _source(self)[1][self.positions(start, stop)]

    def class_counts(self) -> np.ndarray:
        """How many inputs of each class (unlabelled ones not counted)."""
        counts = np.zeros(len(self.class_names), dtype=np.int64)
        step = 1 << 16
        for start in range(0, self.count, step):
            labels = self.labels(start, min(self.count, start + step))
            counts += np.bincount(labels[labels >= 0], minlength=len(counts))[: len(counts)]
        return counts

    def read(self, start: int, stop: int) -> Inputs:
        """Inputs [start, stop): keys, classes and images."""
        positions = self.positions(start, stop)
        if not self.is_dataset:
            images, labels, prefix = _source(self)
            return Inputs([f"{prefix}/{p:07d}" for p in positions], labels[positions], images[positions])
        return _read_dataset(self, positions)


def open_inputs(spec, resolution: int, channels: int) -> InputSet:
    """The ``generate.inputs`` of a job (SynthError naming the field where they cannot be read)."""
    raw = spec.model_dump(mode="json")
    if spec.dataset:
        from pathlib import Path

        from synth.storage import is_url

        if not is_url(spec.dataset):  # the workers (other processes, other nodes) read the same folder
            raw["dataset"] = str(Path(spec.dataset).resolve())
        from synth.fsutil import stream_digest
        from synth.layout import MANIFEST_FILE

        store = _dataset_store(raw["dataset"])
        fh, manifest = _open_manifest(store)
        with fh:
            total = manifest.metadata.num_rows
            names = tuple(json.loads((manifest.schema_arrow.metadata or {}).get(b"class_names", b"[]")))
        with store.open(MANIFEST_FILE) as whole:
            manifest_digest = stream_digest(whole)
        identity = _digest({"dataset": manifest_digest, "indices": spec.indices, "limit": spec.limit})
    else:
        if spec.path:  # as for a dataset: the same folder from every worker
            from pathlib import Path

            raw["path"] = str(Path(spec.path).resolve())
        data = _load_source(raw, resolution, channels)
        total, names = len(data.labels), tuple(data.class_names)
        identity = _digest({**{k: raw[k] for k in ("source", "path", "split", "indices", "limit")}, "size": total})
    if spec.indices is not None:
        bad = [i for i in spec.indices if not 0 <= i < total]
        if bad:
            raise SynthError(f"generate.inputs.indices: {bad[0]} is out of range (the inputs hold {total:,})")
        total = len(spec.indices)
    count = min(total, spec.limit) if spec.limit else total
    if count == 0:
        raise SynthError("generate.inputs: no input images")
    return InputSet(raw, resolution, channels, count, identity, names)


def _digest(obj: Any) -> str:
    from synth.fsutil import data_digest

    return data_digest(json.dumps(obj, sort_keys=True).encode())


# -- a real data source ---------------------------------------------------------------------------


def _load_source(raw: dict[str, Any], resolution: int, channels: int):
    from synth.data import load_dataset, load_test_dataset
    from synth.spec import DataSpec

    spec = DataSpec(source=raw["source"], path=raw.get("path"), resolution=resolution, channels=channels)
    if raw["split"] == "test":
        data = load_test_dataset(spec)
        if data is None:
            raise SynthError(f"generate.inputs.split: source {raw['source']!r} has no test split; use split: train")
        return data
    return load_dataset(spec)


@lru_cache(maxsize=2)
def _source_cached(key: str, resolution: int, channels: int):
    raw = json.loads(key)
    data = _load_source(raw, resolution, channels)
    return data.images, data.labels.astype(np.int64), f"{raw['source']}-{raw['split']}"


def _source(inputs: InputSet):
    return _source_cached(json.dumps(inputs.spec, sort_keys=True), inputs.resolution, inputs.channels)


# -- an earlier synth dataset ---------------------------------------------------------------------


def _dataset_store(url: str):
    """The Store of an earlier synth dataset (SynthError if it holds no manifest)."""
    from synth.layout import MANIFEST_FILE
    from synth.storage import Store

    store = Store(url)
    if not store.exists(MANIFEST_FILE):
        raise SynthError(
            f"generate.inputs.dataset: {store.where()} has no {MANIFEST_FILE} (not a finished synth dataset)"
        )
    return store


def _open_manifest(store):
    """The dataset's manifest, open for reading: (file, ParquetFile); close the file when done."""
    import pyarrow.parquet as pq

    from synth.layout import MANIFEST_FILE

    fh = store.open(MANIFEST_FILE)
    return fh, pq.ParquetFile(fh)


@lru_cache(maxsize=4)
def _dataset_rows(url: str, positions: tuple[int, ...]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(shard, key) and class of manifest rows ``positions``, reading only the row groups that hold them."""
    fh, manifest = _open_manifest(_dataset_store(url))
    with fh:
        sizes = [manifest.metadata.row_group(g).num_rows for g in range(manifest.num_row_groups)]
        bounds = np.cumsum([0, *sizes])
        wanted = np.asarray(positions, dtype=np.int64)
        groups = np.unique(np.searchsorted(bounds, wanted, side="right") - 1)
        where: dict[int, tuple[str, str, int]] = {}
        for g in groups:
            table = manifest.read_row_group(int(g), columns=["key", "shard", "class"]).to_pydict()
            for row, (key, shard, cls) in enumerate(zip(table["key"], table["shard"], table["class"])):
                where[int(bounds[g]) + row] = (shard, key, -1 if cls is None else int(cls))
    rows = [where[int(p)] for p in wanted]
    return [(shard, key) for shard, key, _ in rows], np.asarray([c for _, _, c in rows], dtype=np.int64)


def _read_dataset(inputs: InputSet, positions: np.ndarray) -> Inputs:
    from synth.data import resize_images
    from synth.layout import shard_rel
    from synth.shards import read_shard, sample_image

    url = inputs.spec["dataset"]
    store = _dataset_store(url)
    where, classes = _dataset_rows(url, tuple(positions.tolist()))
    mode = "L" if inputs.channels == 1 else "RGB"
    images: list[np.ndarray | None] = [None] * len(where)
    by_shard: dict[str, dict[str, list[int]]] = {}
    for k, (shard, key) in enumerate(where):
        by_shard.setdefault(shard, {}).setdefault(key, []).append(k)
    for shard, wanted in by_shard.items():  # one shard at a time, in the order they are first needed
        rel = shard_rel(shard)
        if not store.exists(rel):
            raise SynthError(f"generate.inputs.dataset: {store.where(rel)} is missing (the manifest lists it)")
        with store.open(rel) as fh:
            for key, fields in read_shard(fh):
                for k in wanted.get(key, ()):
                    image = sample_image(fields, f"{store.where(rel)}: sample {key}", mode)
                    images[k] = resize_images(image[None], inputs.resolution, inputs.channels)[0]
    missing = [where[k] for k, image in enumerate(images) if image is None]
    if missing:
        shard, key = missing[0]
        raise SynthError(f"generate.inputs.dataset: shard {shard} has no sample {key} (the manifest lists it)")
    return Inputs([key for _, key in where], classes, np.stack(images))
