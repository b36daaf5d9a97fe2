"""A content-addressed cache for pure, expensive results computed from the real data.

An entry's key is a SHA-256 over everything its result depends on: the input arrays' bytes, the
settings, the source code of the functions that compute it (``source_digest``) and the versions
of the libraries they call. A hit returns what this install computed before from the same inputs
(a result equivalent to computing it again: CPU arithmetic may differ with the thread count), and
nothing is invalidated by hand: changed inputs or code make a new key.

Where: ``$SYNTH_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/synth``, else ``~/.cache/synth``;
``SYNTH_CACHE_DIR=off`` turns the cache off. Entries are written whole or not at all. A cache that
cannot be read or written costs a recomputation and a warning, never the command.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from synth.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

OFF = "off"
T = TypeVar("T")

# What a damaged or foreign entry raises when decoded; it is then computed again.
DECODE_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError, RuntimeError, OSError, EOFError)


def cache_dir() -> Path | None:
    """The cache's root, or None when it is off (SYNTH_CACHE_DIR=off, or no home folder to put it in)."""
    env = os.environ.get("SYNTH_CACHE_DIR")
    if env == OFF:
        return None
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "synth"
    try:
        return Path.home() / ".cache" / "synth"
    except RuntimeError:  # no HOME and no passwd entry (containers with an arbitrary uid)
        log.warning("cache: no home folder; set SYNTH_CACHE_DIR to cache evaluation inputs")
        return None


def content_key(*parts: object) -> str:
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


def source_digest(*objects: object) -> str:
    """SHA-256 hex of the source code of functions and classes: a key part that changes with the code."""
    return hashlib.sha256("\n".join(inspect.getsource(o) for o in objects).encode()).hexdigest()


def memoize(
    kind: str,
    parts: tuple,
    compute: Callable[[], T],
    encode: Callable[[T], bytes],
    decode: Callable[[bytes], T],
) -> tuple[T, bool]:
    """(the value, True) from the cache entry ``kind/content_key(*parts)``; else (``compute()``, False),
    stored for next time."""
    root = cache_dir()
    if root is None:
        return compute(), False
    path = root / kind / content_key(*parts)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        log.warning("cache: cannot read %s (%s); computing it", path, exc)
        data = None
    if data is not None:
        try:
            return decode(data), True
        except DECODE_ERRORS as exc:
            log.warning("cache: %s is damaged (%s); computing it again", path, exc)
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode(value))
    except OSError as exc:
        log.warning("cache: cannot write %s (%s); continuing without caching it", path, exc)
    return value, False


def encode_array(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
