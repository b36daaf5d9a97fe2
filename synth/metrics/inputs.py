"""What ``synth evaluate --generated PATH`` points at: a synth dataset, WebDataset shards, or image files."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError
from synth.layout import MANIFEST_FILE
from synth.storage import Store


@dataclass(frozen=True)
class Found:
    """One of: a synth dataset (``dataset``), shards (``tars``), or image files (``files``)."""

    path: Path
    dataset: Store | None = None
    tars: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def find_generated(path: Path) -> Found:
    """Classify ``path``: a folder with manifest.parquet, a .tar or a folder holding .tar files
    (recursively), else a folder of images; fails with one line if it is none of them."""
    from synth.data.sources import IMAGE_SUFFIXES

    path = Path(path)
    if not path.exists():
        raise SynthError(f"--generated {path}: no such file or folder")
    if (path / MANIFEST_FILE).is_file():
        return Found(path, dataset=Store(path), tars=sorted((path / "shards").glob("*.tar")))
    if path.suffix == ".tar":
        return Found(path, tars=[path])
    if path.is_dir():
        tars = sorted(path.rglob("*.tar"))
        if tars:
            return Found(path, tars=tars)
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if files:
            return Found(path, files=files)
    raise SynthError(f"--generated {path}: holds no images or shards")


def first_image_shape(path: Path) -> tuple[int, int]:
    """(resolution, channels) of the first image at ``path``: its longer side, and 1 (gray) or 3."""
    from PIL import Image

    from synth.shards import read_shard, sample_image

    found = find_generated(path)
    try:
        if found.tars:
            key, fields = next(read_shard(found.tars[0]))
            image = sample_image(fields, f"{found.tars[0]}: sample {key}")
            return max(image.shape[:2]), 1 if image.shape[2] == 1 else 3
        with Image.open(found.files[0]) as pil:
            return max(pil.size), 1 if pil.mode in ("L", "1", "I", "I;16", "F") else 3
    except (StopIteration, IndexError, OSError, ValueError, tarfile.TarError) as exc:
        raise SynthError(f"--generated {path}: cannot read a first image ({exc or 'empty'})") from None
