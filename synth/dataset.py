"""Reading synth's output back for training: ``synth.open_dataset(DIR_OR_URL)``.

A webdataset pipeline over the dataset's shards, ready for a PyTorch
DataLoader: shards shuffled with a seed (the same order on every node),
split across distributed ranks and DataLoader workers, samples shuffled in a
buffer, images decoded to tensors and classes to ints.
"""

from __future__ import annotations

import io
import random
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from synth.manifest import IMAGE_EXTS, read_info
from synth.storage import Store

UNLABELLED = -1  # the class of every sample of an unlabelled dataset (made by an unconditional model)


def open_dataset(
    root: str,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    shuffle_buffer: int = 2000,
    transform: Callable[[Any], Any] | None = None,
    split: str = "train",
):
    """A PyTorch IterableDataset of ``(image, class)`` from a synth dataset folder or URL.

    ``image`` is a float32 tensor C x H x W in [0, 1], or ``transform(PIL
    image)`` if a transform is given (for torchvision-style augmentation).
    With ``shuffle``, the shard order depends on ``seed`` and ``epoch`` only
    (so every node and worker agrees on it before splitting), and samples are
    shuffled in a buffer of ``shuffle_buffer``. Shards are split by
    ``torch.distributed`` rank and by DataLoader worker, so each sample is
    seen once per epoch across the whole job. ``len()`` is the whole
    dataset's sample count. In an unlabelled dataset (made by an
    unconditional model) every class is ``UNLABELLED`` (-1).

    Example::

        ds = synth.open_dataset("runs/quickstart")
        loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=2)
        for images, labels in loader: ...
    """
    import webdataset as wds
    from webdataset.tariterators import group_by_keys, tar_file_expander

    store = Store(root)
    info = read_info(store)
    if split not in info.get("splits", {}):
        raise ValueError(f"{store.where()}: no split {split!r} (has {sorted(info.get('splits', {}))})")
    files = list(info["splits"][split]["filenames"])
    num_samples = int(info["splits"][split]["num_samples"])
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(files)
    stages: list = [
        wds.SimpleShardList([store.uri(f) for f in files]),
        wds.split_by_node,
        wds.split_by_worker,
        _opener(store),
        tar_file_expander,
        group_by_keys,
    ]
    if shuffle:
        stages.append(wds.shuffle(shuffle_buffer, initial=min(shuffle_buffer, 500), seed=seed + epoch))
    stages.append(wds.map(_decoder(transform)))
    with warnings.catch_warnings():  # with_length warns that it does not cap an epoch: we know
        warnings.simplefilter("ignore", UserWarning)
        return wds.DataPipeline(*stages).with_length(num_samples)


def _opener(store: Store):
    """A pipeline stage that opens each shard URL through fsspec (local, s3://, gs://, memory://, ...)."""

    def open_streams(src: Iterator[dict]) -> Iterator[dict]:
        for sample in src:
            url = sample["url"]
            with store.fs.open(url if store.is_local else _fs_path(store, url), "rb") as stream:
                yield {**sample, "stream": stream}

    return open_streams


def _fs_path(store: Store, url: str) -> str:
    prefix = store.url.rstrip("/") + "/"
    return store.path(url[len(prefix):]) if url.startswith(prefix) else url


def _decoder(transform):
    def decode(sample: dict) -> tuple[Any, int]:
        from PIL import Image

        ext = next((e for e in IMAGE_EXTS if e in sample), None)
        if ext is None:
            raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: no image")
        image = Image.open(io.BytesIO(sample[ext]))
        image.load()
        label = int(sample["cls"]) if "cls" in sample else UNLABELLED
        if transform is not None:
            return transform(image), label
        return _to_tensor(image), label

    return decode


def _to_tensor(image):
    import numpy as np
    import torch

    arr = np.asarray(image)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
