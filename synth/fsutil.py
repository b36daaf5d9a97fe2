"""Small file helpers: whole-or-nothing writes and content digests."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON with sorted keys, written whole (atomic_write_bytes)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def data_digest(data: bytes) -> str:
    """``file_digest`` of bytes already in memory."""
    return hashlib.sha256(data).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256."""
    with open(path, "rb") as fh:
        return stream_digest(fh)


def stream_digest(fh) -> str:
    """``file_digest`` of an open binary file (any filesystem's), read in 1 MiB chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()[:16]
