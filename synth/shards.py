"""WebDataset shards: reproducible, atomic writing, and plain reading.

A shard is a POSIX tar whose members are ``KEY.EXT`` files, grouped by key and
sorted by extension within a key. Every member has mtime 0, mode 0644, uid/gid
0 and empty owner names, so the same samples always give the same bytes. A
shard is streamed to a temporary name in its store and moved into place when
complete (storage.Store.atomic): readers never see a partial shard.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from synth.errors import SynthError
from synth.storage import Store

IMAGE_EXTS = ("png", "webp", "jpg")  # the image fields a sample may hold, in the order looked for


@dataclass(frozen=True)
class ShardFile:
    """What was written: path in its store, byte size, md5 of the tar, sample count."""

    path: str
    num_bytes: int
    md5: str
    num_samples: int


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: a tar's total size is a multiple of this
_NAME, _SIZE, _CHKSUM = slice(0, 100), slice(124, 136), slice(148, 156)


def _header_template() -> tuple[bytes, int]:
    """tarfile's own USTAR header of our members, with name, size and checksum blanked; and its byte sum.

    Every member shares mode, owner, mtime and type, so only three fields vary;
    filling them into this template writes the very bytes tarfile would, at a
    fraction of its cost (tarfile builds every field in Python each time).
    """
    header = bytearray(_member("", 0).tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    header[_NAME] = bytes(100)
    header[_SIZE] = bytes(12)
    header[_CHKSUM] = b" " * 8
    return bytes(header), sum(header)


_TEMPLATE, _TEMPLATE_SUM = _header_template()


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte USTAR header of a regular file ``name`` of ``size`` bytes (mtime 0, mode 0644, owner 0)."""
    raw = name.encode("ascii")
    if len(raw) > 100:
        raise ValueError(f"tar member name {name!r} is longer than 100 bytes")
    size_field = b"%011o\0" % size
    header = bytearray(_TEMPLATE)
    header[: len(raw)] = raw
    header[_SIZE] = size_field
    header[_CHKSUM] = b"%06o\0 " % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return bytes(header)


def write_tar(fh, samples: Iterable[tuple[str, dict[str, bytes]]]) -> tuple[int, int, str]:
    """Stream ``(key, {ext: bytes})`` samples as a tar into ``fh``: (samples, bytes, md5).

    Keys must not contain dots (WebDataset splits key and extension at the
    first dot). Extensions are written in sorted order. The bytes are those of
    ``tarfile`` in USTAR format with our fixed member attributes.
    """
    count = total = 0
    md5 = hashlib.md5()
    for key, fields in samples:
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
        chunk = bytearray()
        for ext in sorted(fields):
            data = fields[ext]
            chunk += tar_header(f"{key}.{ext}", len(data))
            chunk += data
            chunk += bytes(-len(data) % BLOCK)
        md5.update(chunk)
        fh.write(chunk)
        total += len(chunk)
        count += 1
    end = bytes(2 * BLOCK)
    end += bytes(-(total + len(end)) % RECORD)
    md5.update(end)
    fh.write(end)
    return count, total + len(end), md5.hexdigest()


def write_shard(store: Store, rel: str, samples: Iterable[tuple[str, dict[str, bytes]]]) -> ShardFile:
    """Write a shard at ``rel`` in ``store``, atomically (never visible half-written)."""
    with store.atomic(rel) as fh:
        count, num_bytes, md5 = write_tar(fh, samples)
    return ShardFile(rel, num_bytes, md5, count)


def read_shard(source: str | Path | IO[bytes]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` per sample, in file order, from a path or an open binary file."""
    kwargs = {"name": source} if isinstance(source, (str, Path)) else {"fileobj": source}
    with tarfile.open(mode="r:", **kwargs) as tar:
        key, fields = None, {}
        for member in tar:
            if not member.isfile():
                continue
            base = member.name.rsplit("/", 1)[-1]
            this_key, _, ext = base.partition(".")
            if key is not None and this_key != key:
                yield key, fields
                fields = {}
            key = this_key
            fields[ext] = tar.extractfile(member).read()
        if key is not None:
            yield key, fields


def sample_image(fields: dict[str, bytes], where: str, mode: str | None = None) -> np.ndarray:
    """A sample's image as uint8 HWC (C = 1 or 3); ``mode`` ("L" or "RGB") converts it first.

    ``where`` names the sample in the error a sample without a readable image raises.
    """
    ext = next((e for e in IMAGE_EXTS if e in fields), None)
    if ext is None:
        raise SynthError(f"{where}: no image ({', '.join(IMAGE_EXTS)})")
    try:
        pil = Image.open(io.BytesIO(fields[ext]))
        arr = np.asarray(pil.convert(mode) if mode and pil.mode != mode else pil)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SynthError(f"{where}: cannot decode its .{ext} ({exc})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def md5_file(path: str | Path | IO[bytes]) -> str:
    h = hashlib.md5()
    with open(path, "rb") if isinstance(path, (str, Path)) else path as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
