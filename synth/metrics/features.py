"""InceptionV3 feature passes, run where the images are.

The same pass over the same pixels runs in three places:

- in the evaluating process (``local_pass``);
- in Ray tasks over chunks of the images (``chunk_features``, which engine.map_shards maps): the
  evaluation's pass sharded across the cluster, the weights shipped once through the object store;
- in the generation workers (``shard_features``), on the samples evaluation will judge, as they
  are made. They are stored beside the shard's manifest part (``.synth/features/<shard>.npz``),
  and evaluation takes them from there instead of running the network over those images again.

Stored features carry a key of everything that decides them (the network's weights, our feature
code, torch/Pillow/clean-fid versions, the size the images are judged at); evaluation uses only
those whose key is its own, and computes the rest.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synth import cache
from synth.errors import SynthError
from synth.metrics.fid import InceptionFeatures, clean_resize, inception_weights_path

FEATURES_DIR = ".synth/features"
CHUNK = 200  # images per Ray task: big enough that the task's overhead is small against its ~20 s

FeaturePass = Callable[[np.ndarray, Callable[[int], None] | None], np.ndarray]


def feature_key(extractor: InceptionFeatures, size: int, channels: int) -> str:
    """What decides the features of an image judged at ``size`` x ``size`` x ``channels``."""
    import PIL
    import torch

    code = cache.source_digest(InceptionFeatures, clean_resize)
    versions = (torch.__version__, PIL.__version__, importlib.metadata.version("clean-fid"))
    return cache.content_key("inception", code, *versions, extractor.weights_digest, size, channels)[:16]


_EXTRACTORS: dict[str, InceptionFeatures] = {}


def extractor(weights: str | None = None, data: bytes | None = None, digest: str | None = None,
              device: str = "cpu") -> InceptionFeatures:  # fmt: skip
    """The Inception network, loaded once per process (from ``weights`` or from ``data`` with its ``digest``)."""
    path = None if data is not None else inception_weights_path(weights)
    key = f"{digest if data is not None else path}@{device}"
    if key not in _EXTRACTORS:
        _EXTRACTORS.clear()  # one network per process: a worker does not collect them
        _EXTRACTORS[key] = InceptionFeatures(path, device=device, data=data, digest=digest)
    return _EXTRACTORS[key]


def local_pass(net: InceptionFeatures) -> FeaturePass:
    """The pass in this process."""
    return lambda images, progress=None: net(images, progress=progress)


@dataclass(frozen=True)
class Chunk:
    """``images[offset : offset + len(images)]`` of one pass, and the digest of the weights to use."""

    offset: int
    images: np.ndarray
    digest: str


def chunk_features(chunk: Chunk, weights: bytes) -> tuple[int, np.ndarray]:
    """A Ray task: (offset, float32 features of the chunk's images)."""
    import torch

    net = extractor(data=weights, digest=chunk.digest, device="cuda" if torch.cuda.is_available() else "cpu")
    return chunk.offset, net(chunk.images).astype(np.float32)


@dataclass(frozen=True)
class FeatureTarget:
    """Features for generation workers to compute: of which leading samples, at what size, with which weights."""

    take: int  # the shard's first ``take`` samples (plan.head_counts)
    size: int
    channels: int
    weights: str | None = None  # evaluate.inception_weights; None: SYNTH_INCEPTION_WEIGHTS or the package's


def shard_features(target: FeatureTarget, indices: list[int], images: list[np.ndarray]) -> bytes:
    """The stored features of a shard's leading samples (decoded images, as evaluation reads them)."""
    from synth.data import resize_images

    net = extractor(target.weights)
    batch = resize_images(np.stack(images), target.size, target.channels)
    features = net(batch).astype(np.float32)
    return encode_stored(np.asarray(indices, np.int64), features, feature_key(net, target.size, target.channels))


def features_rel(shard_name: str) -> str:
    return f"{FEATURES_DIR}/{shard_name.removesuffix('.tar')}.npz"


def encode_stored(indices: np.ndarray, features: np.ndarray, key: str) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, index=indices, features=features, meta=np.asarray(json.dumps({"key": key})))
    return buf.getvalue()


def decode_stored(data: bytes) -> tuple[np.ndarray, np.ndarray, str]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return z["index"], z["features"], json.loads(str(z["meta"]))["key"]


def stored_features(store, shards: list[str], indices: np.ndarray, key: str) -> np.ndarray:
    """(len(indices), 2048) float64 features of these samples from the shards' stored features; NaN
    rows for samples that have none stored under ``key`` (or whose file is missing or unreadable)."""
    out = np.full((len(indices), 2048), np.nan)
    where = {int(i): row for row, i in enumerate(indices)}
    for name in shards:
        rel = features_rel(name)
        if not store.exists(rel):
            continue
        try:
            idx, feats, stored_key = decode_stored(store.read_bytes(rel))
        except (OSError, ValueError, KeyError) as exc:
            raise SynthError(f"{store.where(rel)}: unreadable stored features ({exc}); delete it to compute them "
                             "again") from None  # fmt: skip
        if stored_key != key or feats.shape[1:] != (2048,):
            continue
        for i, f in zip(idx.tolist(), feats):
            row = where.get(i)
            if row is not None:
                out[row] = f
    return out


def fill_missing(features: np.ndarray, images: np.ndarray, run: FeaturePass, progress=None) -> int:
    """Compute the NaN rows of ``features`` from ``images`` with ``run``; returns how many were computed."""
    missing = np.flatnonzero(np.isnan(features).any(axis=1))
    if len(missing):
        features[missing] = run(images[missing], progress)
    return int(len(missing))
