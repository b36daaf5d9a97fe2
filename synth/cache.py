"""A content-addressed cache for pure, expensive results (the same inputs give the same result).

An entry's key is a SHA-256 over everything its result depends on: the input arrays' bytes, the
settings, a version of the code that computes it, and the torch version. A hit therefore returns
what this install would compute again, and nothing is ever invalidated by hand: changed inputs
or code make a new key.

Where: ``$SYNTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/synth``, else ``~/.cache/synth``.
``SYNTH_CACHE_DIR=off`` turns the cache off. Entries are written under a temporary name and
renamed when whole, so a reader never sees half a file; an unwritable cache only warns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

OFF = "off"


def cache_dir() -> Path | None:
    """The cache's root, or None when SYNTH_CACHE_DIR=off."""
    env = os.environ.get("SYNTH_CACHE_DIR")
    if env == OFF:
        return None
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "synth"


def content_key(*parts) -> str:
    """SHA-256 hex of ``parts``: numpy arrays by dtype, shape and bytes; anything else as JSON."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"ndarray:{part.dtype.str}:{part.shape}:".encode())
            h.update(np.ascontiguousarray(part).data)
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
        h.update(b"\x00")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def entry_path(kind: str, key: str, suffix: str) -> Path | None:
    """Where the entry ``kind/key`` lives (it may not exist), or None with the cache off."""
    root = cache_dir()
    return None if root is None else root / kind / f"{key}{suffix}"


def write_atomic(path: Path, write) -> bool:
    """Call ``write(tmp_path)``, then rename the file into ``path``. False (and a warning) on OSError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        log.warning("cache: could not write %s (%s); continuing without caching it", path, exc)
        return False
    return True


def read_array(path: Path | None) -> np.ndarray | None:
    """The array cached at ``path``; None if there is none (or the cache is off, or the entry is damaged)."""
    if path is None or not path.exists():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("cache: %s unreadable (%s); computing it again", path, exc)
        return None


def write_array(path: Path | None, array: np.ndarray) -> None:
    if path is not None:

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)

        write_atomic(path, write)
