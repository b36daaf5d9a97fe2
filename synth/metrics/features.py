"""InceptionV3 feature passes, run where the images are.

The same pass over the same pixels runs in three places:

- in the evaluating process (``local_pass``);
- in Ray tasks over chunks of the images (``chunk_features``, which engine.map_shards maps): the
  evaluation's pass sharded across the cluster, the weights shipped once through the object store;
- in the generation workers (``shard_features``), on the samples evaluation will judge, as they
  are made. They are stored beside the shard's manifest part (``.synth/features/<shard>.npz``),
  and evaluation takes them from there instead of running the network over those images again.

Stored features carry a key of everything that decides them (the network's weights, our decode,
resize and feature code, torch/Pillow/clean-fid versions, the size the images are judged at) and
the md5 of the shard they were computed from; evaluation uses only those whose key is its own and
whose shard is the one it reads, and computes the rest.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synth import cache
from synth.layout import features_rel
from synth.metrics.fid import InceptionFeatures, clean_resize, inception_weights_path

CHUNK = 200  # images per Ray task: big enough that the task's overhead is small against its ~20 s

FeaturePass = Callable[[np.ndarray, Callable[[int], None] | None], np.ndarray]


def feature_key(extractor: InceptionFeatures, size: int, channels: int) -> str:
    """What decides the features of an image judged at ``size`` x ``size`` x ``channels``."""
    import PIL
    import torch

    from synth.data import _resize_one, resize_images, square_crop
    from synth.shards import sample_image

    # the decode and the resize to the judged size are part of what the features are of
    code = cache.source_digest(InceptionFeatures, clean_resize, sample_image, resize_images, _resize_one, square_crop)
    versions = (torch.__version__, PIL.__version__, importlib.metadata.version("clean-fid"))
    return cache.content_key("inception", code, *versions, extractor.weights_digest, size, channels)[:16]


_EXTRACTORS: dict[str, InceptionFeatures] = {}


def extractor(
    weights: str | None = None, data: bytes | None = None, digest: str | None = None, device: str = "cpu"
) -> InceptionFeatures:
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
    """Features for a generation worker to compute: of the shard's first ``take`` samples
    (plan.head_counts), judged at ``size`` x ``size`` x ``channels``, with the weights of this digest
    (their bytes reach the worker through the object store)."""

    take: int
    size: int
    channels: int
    digest: str


def shard_features(
    target: FeatureTarget,
    indices: list[int],
    images: list[np.ndarray],
    weights: bytes,
    shard_md5: str,
    device: str = "cpu",
) -> bytes:
    """The stored features of a shard's leading samples (decoded images, as evaluation reads them)."""
    from synth.data import resize_images

    net = extractor(data=weights, digest=target.digest, device=device)
    batch = resize_images(np.stack(images), target.size, target.channels)
    features = net(batch).astype(np.float32)
    key = feature_key(net, target.size, target.channels)
    return encode_stored(np.asarray(indices, np.int64), features, key, shard_md5)


def encode_stored(indices: np.ndarray, features: np.ndarray, key: str, shard_md5: str) -> bytes:
    buf = io.BytesIO()
    meta = json.dumps({"key": key, "shard_md5": shard_md5})
    np.savez(buf, index=indices, features=features, meta=np.asarray(meta))
    return buf.getvalue()


def decode_stored(data: bytes) -> tuple[np.ndarray, np.ndarray, dict]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return z["index"], z["features"], json.loads(str(z["meta"]))


UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def stored_features(
    store, shards: dict[str, tuple[np.ndarray, str]], key: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per shard, the stored features of the given samples: ``shards`` maps a shard's name to (the
    indices of its samples judged, the shard's md5). Returns ({name: (len(indices), 2048) float64,
    NaN rows where nothing usable is stored}, [unreadable feature files]).

    Usable: stored under ``key``, for this very shard (its md5), for this sample index.
    """
    out, unreadable = {}, []
    for name, (indices, md5) in shards.items():
        feats = np.full((len(indices), 2048), np.nan)
        out[name] = feats
        rel = features_rel(name)
        try:
            if not store.exists(rel):
                continue
            idx, stored, meta = decode_stored(store.read_bytes(rel))
        except UNREADABLE:
            unreadable.append(store.where(rel))
            continue
        if meta.get("key") != key or meta.get("shard_md5") != md5 or stored.shape[1:] != (2048,):
            continue
        row_of = {int(i): r for r, i in enumerate(idx)}
        for j, i in enumerate(indices.tolist()):
            if i in row_of:
                feats[j] = stored[row_of[i]]
    return out, unreadable


def fill_missing(features: np.ndarray, images: np.ndarray, run: FeaturePass, progress=None) -> int:
    """Compute the NaN rows of ``features`` from ``images`` with ``run``; returns how many were computed."""
    missing = np.flatnonzero(np.isnan(features).any(axis=1))
    if len(missing):
        features[missing] = run(images[missing], progress)
    return len(missing)
