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

from synth.storage import Store


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


class _HashingWriter(io.RawIOBase):
    """File wrapper that hashes and counts the bytes written through it."""

    def __init__(self, fh):
        self.fh, self.md5, self.count = fh, hashlib.md5(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def write(self, data) -> int:
        self.md5.update(data)
        self.count += len(data)
        return self.fh.write(data)


def write_tar(fh, samples: Iterable[tuple[str, dict[str, bytes]]]) -> tuple[int, int, str]:
    """Stream ``(key, {ext: bytes})`` samples as a tar into ``fh``: (samples, bytes, md5).

    Keys must not contain dots (WebDataset splits key and extension at the
    first dot). Extensions are written in sorted order.
    """
    count = 0
    hashing = _HashingWriter(fh)
    with tarfile.open(fileobj=hashing, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
            for ext in sorted(fields):
                data = fields[ext]
                tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))
            count += 1
    return count, hashing.count, hashing.md5.hexdigest()


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


def md5_file(path: str | Path | IO[bytes]) -> str:
    h = hashlib.md5()
    with (open(path, "rb") if isinstance(path, (str, Path)) else path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
