"""Real images, the data a job learns from and is judged against (``data:``), all behind one interface:
uint8 NHWC images and int64 labels. (Reading synth's own output is ``synth.reader``.)

``load_dataset(spec)`` is the entry point; each source is a function in
``sources.py`` returning an ``ImageDataset`` at its native size, which is then
resized to the job's resolution and channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from synth.errors import SynthError


@dataclass(frozen=True)
class ImageDataset:
    """Real images and their labels.

    images: uint8, shape (N, H, W, C), C in {1, 3}.
    labels: int64, shape (N,), values in [0, num_classes).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


def resize_images(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Resize uint8 NHWC images to (resolution, resolution, channels).

    PIL bicubic; non-square images are centre-cropped to a square first.
    """
    n, h, w, c = images.shape
    if h == w == resolution and c == channels:
        return images
    out = np.empty((n, resolution, resolution, channels), dtype=np.uint8)
    for i in range(n):
        out[i] = _resize_one(images[i], resolution, channels)
    return out


def _resize_one(image: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    pil = square_crop(pil)
    if pil.size != (resolution, resolution):
        pil = pil.resize((resolution, resolution), Image.Resampling.BICUBIC)
    pil = pil.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(pil, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def square_crop(pil: Image.Image) -> Image.Image:
    """Centre-crop a PIL image to a square."""
    w, h = pil.size
    if w == h:
        return pil
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return pil.crop((left, top, left + side, top + side))


def subsample(ds: ImageDataset, limit: int | None, seed: int) -> ImageDataset:
    """The first ``limit`` images after a seeded shuffle (all if None)."""
    if limit is None or limit >= len(ds):
        return ds
    order = np.random.default_rng(seed).permutation(len(ds))[:limit]
    order.sort()
    return ImageDataset(ds.name, ds.images[order], ds.labels[order], ds.class_names)


def load_dataset(spec, seed: int = 0) -> ImageDataset:
    """Load the source named by a DataSpec, at the spec's resolution and channels."""
    from synth.data import sources

    loader = sources.SOURCES.get(spec.source)
    if loader is None:
        raise SynthError(f"data.source: unknown source {spec.source!r}; choose from {sorted(sources.SOURCES)}")
    ds = loader(spec)
    ds = subsample(ds, spec.limit, seed)
    images = resize_images(ds.images, spec.resolution, spec.channels)
    return ImageDataset(ds.name, images, ds.labels.astype(np.int64), ds.class_names)


def load_test_dataset(spec) -> ImageDataset | None:
    """The source's real test split at the job's resolution, or None if the source has none."""
    from synth.data import sources

    loader = sources.TEST_SOURCES.get(spec.source)
    if loader is None:
        return None
    ds = loader(spec)
    return ImageDataset(ds.name, resize_images(ds.images, spec.resolution, spec.channels), ds.labels, ds.class_names)
