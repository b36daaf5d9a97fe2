"""Where a dataset lives: a local folder or any fsspec URL, behind one small interface.

``Store(url)`` is plain, picklable data (just the URL); the filesystem is
resolved lazily in each process. Paths given to its methods are relative to
the store's root and use ``/``. Whole files are made visible atomically: they
are written under a hidden temporary name in the same folder and moved into
place when complete (a rename on local disks; on object stores the upload
itself only becomes visible when it completes).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from synth.errors import SynthError


def is_url(text: str) -> bool:
    return "://" in text


class Store:
    """A folder on some filesystem, addressed by a path or URL."""

    def __init__(self, url: str | Path):
        url = str(url)
        self.url = url if is_url(url) else str(Path(url).resolve())
        self._fs = None
        self._root = ""

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Store) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict:
        return {"url": self.url}

    def __setstate__(self, state: dict) -> None:
        self.url, self._fs, self._root = state["url"], None, ""

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise SynthError(f"{self.url}: cannot open this location ({exc})") from None
            self._root = self._root.rstrip("/") or "/"
        return self._fs

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def path(self, rel: str = "") -> str:
        """The filesystem path of ``rel`` (what ``self.fs`` methods take)."""
        self.fs  # noqa: B018 - resolves _root
        return posixpath.join(self._root, rel) if rel else self._root

    def uri(self, rel: str = "") -> str:
        """A URL for ``rel`` that other tools (webdataset, Ray Data, wids) can open."""
        return self.path(rel) if self.is_local else self.where(rel)

    def where(self, rel: str = "") -> str:
        """``rel`` as the user named the store (a path, or the URL they gave): for messages."""
        return self.url.rstrip("/") + ("/" + rel if rel else "")

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def size(self, rel: str) -> int | None:
        """Byte size of a file, or None if there is none."""
        try:
            info = self.fs.info(self.path(rel))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def listdir(self, rel: str) -> list[str]:
        """Names of the entries of folder ``rel`` (empty if it does not exist)."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries)

    def open(self, rel: str, mode: str = "rb") -> IO[bytes]:
        return self.fs.open(self.path(rel), mode)

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as fh:
            return fh.read()

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm(self.path(rel))
        except FileNotFoundError:
            pass

    def makedirs(self, rel: str) -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    @contextmanager
    def atomic(self, rel: str) -> Iterator[IO[bytes]]:
        """Open ``rel`` for writing; it appears, whole, only when the block ends without error."""
        folder, name = posixpath.split(rel)
        tmp = posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        self.makedirs(folder)
        try:
            with self.open(tmp, "wb") as fh:
                yield fh
                fh.flush()
                fileno = getattr(fh, "fileno", None)
                if self.is_local and fileno is not None:
                    os.fsync(fileno())
            self.fs.mv(self.path(tmp), self.path(rel))
        except BaseException:
            self.remove(tmp)
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.atomic(rel) as fh:
            fh.write(data)


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
