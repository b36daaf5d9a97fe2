"""Process-level malloc settings for torch work that runs outside the main thread.

Ray Train runs the training function in a thread of its worker process
(engine._train_worker calls ``keep_freed_memory`` there). glibc gives such a
thread its own malloc arena, and with glibc's defaults freed memory goes back to
the kernel as soon as a few MiB lie free at the top of a heap. A training step frees its activations
at its end and allocates them again at the next: with the defaults, every step
faults its working memory in anew (tests/unit/test_memtune.py: 380,000 page
faults for 100 rounds of 20 MiB, against 4,000 with these settings).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# mallopt(3) parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # the ceiling of glibc's own dynamic threshold: tensors below it reuse heap memory
TRIM_THRESHOLD_BYTES = 256 << 20  # free memory an arena keeps before returning it to the kernel
TOP_PAD_BYTES = 64 << 20  # extra memory taken per heap growth, so growth is rare


@functools.cache
def keep_freed_memory() -> bool:
    """Make malloc keep freed memory for reuse in every arena of this process (glibc only; idempotent).

    Costs up to ``TRIM_THRESHOLD_BYTES`` of resident memory per arena that a
    process could otherwise return; buys a training step in a worker thread
    that reuses its memory instead of faulting it in again (bench/train_thread.py). Returns False
    where there is no glibc to tune (macOS, musl), changing nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)
