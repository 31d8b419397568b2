"""Allocator settings that give freed memory back to the system (glibc on Linux).

PyTorch's CPU tensors come from glibc ``malloc``. glibc serves a large block with
``mmap`` only while it is above a threshold that it raises to the size of every
mmapped block freed (up to 32 MiB on 64-bit), so after the first step most
activations live in the heap, and a freed heap block goes back to the system only
when it sits at the top. A training step allocates and frees its activations
every step, so RSS stays at the highest step's high-water mark plus whatever the
heap fragmented into, and load-time temporaries (dtype casts of the checkpoint)
stay resident for the whole run.

``configure`` fixes the mmap threshold (so large tensors are mmapped and returned
on free), caps the number of arenas (each OpenMP thread may otherwise grow its
own) and lowers the trim threshold; ``release`` asks glibc to return free heap
pages now (``malloc_trim``), which the engine calls after loading the model.
``TUNELAB_ALLOCATOR=default`` leaves glibc as it is (the benchmarks compare both).
Elsewhere (macOS, musl, Windows) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache
from typing import Any

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Blocks from 1 MiB up are mmapped and unmapped on free; the heap is trimmed above 16 MiB free.
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 16 << 20
ARENA_MAX = 2


@cache
def _libc() -> Any:
    """glibc, or None where there is none (the settings are then skipped)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def enabled() -> bool:
    return os.environ.get("TUNELAB_ALLOCATOR", "release") != "default" and _libc() is not None


def configure() -> dict[str, Any]:
    """Apply the settings once per process; what was applied, for the run's resolved config."""
    if not enabled():
        return {"allocator": "default"}
    libc = _libc()
    applied = {
        "mmap_threshold": MMAP_THRESHOLD
        if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        else None,
        "trim_threshold": TRIM_THRESHOLD
        if libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        else None,
        "arena_max": ARENA_MAX if libc.mallopt(M_ARENA_MAX, ARENA_MAX) else None,
    }
    return {"allocator": "release", **applied}


def release() -> None:
    """Return free heap pages to the system now (after loading, when temporaries are gone)."""
    if enabled():
        _libc().malloc_trim(0)
