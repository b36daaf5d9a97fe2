"""Reading synth's output back for training: ``synth.open_dataset(DIR_OR_URL)``.

A webdataset pipeline over the dataset's shards, ready for a PyTorch
DataLoader: shards shuffled with a seed (the same order on every node),
split across distributed ranks and DataLoader workers, samples shuffled in a
buffer, images decoded to tensors and classes to ints.
"""

from __future__ import annotations

import io
import itertools
import math
import random
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
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
    real: Any = None,
    real_fraction: float = 0.5,
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

    ``real`` mixes real images in, ``real_fraction`` of the stream: a data source's name
    (``"fashion_mnist"``, ``"mnist"``, ...: its training split, at the synthetic images' size), a
    ``synth.spec.DataSpec`` (or its dict), or another synth dataset or folder of shards. Position k of
    each worker's stream is real when ``floor((k+1)f) > floor(kf)``, so any run of B consecutive
    samples (a batch) holds ``floor(Bf)`` or ``ceil(Bf)`` real ones. The real images are drawn in a
    seeded order (``seed``, ``epoch``), split across ranks and workers like the shards, and repeated
    when used up; an epoch ends with the synthetic samples, and ``len()`` counts both. The classes
    must be the synthetic dataset's.

    Example::

        ds = synth.open_dataset("runs/quickstart")
        loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=2)
        for images, labels in loader: ...

        mixed = synth.open_dataset("runs/fashion", real="fashion_mnist", real_fraction=0.25)
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
        synthetic = wds.DataPipeline(*stages).with_length(num_samples)
    if real is None:
        return synthetic
    if not 0 <= real_fraction < 1:
        raise ValueError(f"real_fraction: {real_fraction} is not in [0, 1)")
    names = list(info.get("class_names") or [])
    reals = _real_stream(real, store, files, names, seed, epoch, transform)
    length = math.ceil(num_samples / (1 - real_fraction)) if real_fraction else num_samples
    return _mixed_dataset_class()(synthetic, reals, real_fraction, length)


class Mixing:
    """Synthetic samples with real ones interleaved at ``fraction`` (see ``open_dataset``'s ``real``).

    Plain Python, so this module imports without torch; what ``open_dataset`` returns is
    ``MixedDataset``, this class with torch's ``IterableDataset`` as a base, made on first use."""

    def __init__(self, synthetic, reals: Callable[[], Iterator], fraction: float, length: int):
        self.synthetic, self.reals, self.fraction, self.length = synthetic, reals, fraction, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        real = self.reals()  # made in the DataLoader worker: it splits the real images by rank and worker
        synthetic = iter(self.synthetic)
        f = self.fraction
        for k in itertools.count():
            if math.floor((k + 1) * f) > math.floor(k * f):
                yield next(real)
                continue
            item = next(synthetic, None)
            if item is None:
                return
            yield item


@cache
def _mixed_dataset_class() -> type:
    """``MixedDataset``: Mixing as a torch IterableDataset (the DataLoader treats it as a stream)."""
    from torch.utils.data import IterableDataset

    cls = type("MixedDataset", (Mixing, IterableDataset), {"__doc__": Mixing.__doc__, "__module__": __name__})
    cls.__qualname__ = "MixedDataset"
    return cls


def __getattr__(name: str):
    if name == "MixedDataset":  # synth.reader.MixedDataset (also how pickle finds the class) imports torch now
        return _mixed_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _real_stream(real, store: Store, files: list[str], names: list[str], seed: int, epoch: int, transform):
    """A factory of the real images' endless iterator of decoded ``(image, class)``."""
    from synth.spec import DataSpec

    if isinstance(real, (str, Path)) and str(real) not in _SOURCE_NAMES:
        other = Store(str(real))
        theirs = list(read_info(other).get("class_names") or [])
        if theirs != names:
            raise ValueError(
                f"real={real}: its classes ({', '.join(theirs[:10])}) are not the synthetic dataset's "
                f"({', '.join(names[:10])})"
            )

        def from_shards() -> Iterator:
            for cycle in itertools.count():  # a new order each time round
                yield from open_dataset(
                    str(real), shuffle=True, seed=seed + 1, epoch=epoch * 1_000 + cycle, transform=transform
                )

        return from_shards
    size, channels = _first_image_shape(store, files[0])
    spec = (
        real
        if isinstance(real, DataSpec)
        else DataSpec.model_validate(
            {"source": real, "resolution": size, "channels": channels} if isinstance(real, str) else real
        )
    )
    from synth.data import load_dataset

    data = load_dataset(spec, seed)
    if list(data.class_names) != names:
        raise ValueError(
            f"real={spec.source}: its classes ({', '.join(data.class_names[:10])}) are not the synthetic "
            f"dataset's ({', '.join(names[:10])})"
        )
    decode = _array_decoder(transform)

    def from_arrays() -> Iterator:
        import numpy as np

        part, parts = _this_worker()
        for cycle in itertools.count():
            order = np.random.default_rng([seed, epoch, cycle]).permutation(len(data))[part::parts]
            for i in order:
                yield decode(data.images[i], int(data.labels[i]))

    return from_arrays


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
    return store.path(url[len(prefix) :]) if url.startswith(prefix) else url


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


_SOURCE_NAMES = ("digits", "mnist_subset", "mnist", "fashion_mnist")  # sources named without a folder


def _first_image_shape(store: Store, shard: str) -> tuple[int, int]:
    """(size, channels) of the first image of a shard: the real images are loaded at that size."""
    from synth.shards import read_shard, sample_image

    with store.open(shard) as fh:
        key, fields = next(iter(read_shard(fh)))
    image = sample_image(fields, f"{shard}: sample {key}")
    return int(image.shape[0]), int(image.shape[2])


def _this_worker() -> tuple[int, int]:
    """(this process's part, the number of parts): torch.distributed rank x DataLoader worker."""
    import torch.distributed as dist
    from torch.utils.data import get_worker_info

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    worker = get_worker_info()
    wid, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
    return rank * workers + wid, world * workers


def _array_decoder(transform):
    """(uint8 HWC image, class) -> what the synthetic side's decoder gives: a tensor, or transform(PIL image)."""

    def decode(image, label: int):
        from PIL import Image

        if transform is not None:
            return transform(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)), label
        import torch

        return torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255.0), label

    return decode
