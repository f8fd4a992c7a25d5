"""The C allocator's handling of the large buffers that scoring allocates and frees for every SAE.

Scoring an SAE allocates a few buffers of tens of MiB (the ``W_enc`` slab read from its file, each block of
codes, the activation masks) and frees them when the SAE is done. glibc serves such requests with a fresh
``mmap`` and returns it to the kernel on ``free``, so the next SAE's buffers are faulted in and zeroed page
by page again: about a tenth of the time of scoring a width-36,864 SAE. :func:`keep_large_buffers` has
glibc serve them from the heap instead and keep freed memory for reuse. The peak resident memory stays that
of the largest SAE (``benchmarks/bench_scale.py`` measures it for 1 and for 32 SAEs).

It changes process-wide settings, so only ``pseval eval`` calls it, before its first SAE (a library leaves its
host's allocator alone, and training keeps glibc's defaults); it does nothing where the C library is not glibc,
or where the user set the allocator's own environment variables.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD_BYTES = 32 << 20
"""Requests below this come from the heap (glibc's largest allowed value on 64-bit systems)."""
TRIM_THRESHOLD_BYTES = 512 << 20
"""Free memory at the top of the heap is returned to the kernel only above this much."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_large_buffers() -> bool:
    """Have glibc keep freed buffers under :data:`MMAP_THRESHOLD_BYTES` for reuse; whether it was set."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another C library: its own policy stands
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "keep_large_buffers"]
