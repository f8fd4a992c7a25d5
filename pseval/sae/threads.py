"""Thread counts of torch's CPU operations while SAEs are read and scored.

Scoring one SAE is one large matmul per block of latents (the encode) and many short memory-bound passes
(the bias and activation rule, the finite checks, the statistics of the codes, the cosines of a few hundred
rows). Two threads gain little on a short pass, and on a machine whose cores are shared with other jobs
each parallel pass waits for a descheduled thread: a 20 µs reduction then takes tens of milliseconds.
:func:`small_ops` runs a stretch of code on :data:`SMALL_OP_THREADS` threads; inside it,
:func:`matmul_threads` gives the encode matmul back the thread count torch had (its own setting, e.g.
``OMP_NUM_THREADS``), so the heavy product keeps every core it was given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

SMALL_OP_THREADS = 1
"""Threads of the memory-bound passes (everything in :func:`small_ops` but :func:`matmul_threads`)."""

_outer_threads: list[int] = []
"""Torch's thread count outside each active :func:`small_ops`, innermost last."""


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch's CPU thread count set to ``n`` (restored after)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def small_ops() -> Iterator[None]:
    """Run the block on :data:`SMALL_OP_THREADS` threads (but :func:`matmul_threads` inside it)."""
    before = torch.get_num_threads()
    _outer_threads.append(before)
    try:
        with torch_threads(min(before, SMALL_OP_THREADS)):
            yield
    finally:
        _outer_threads.pop()


@contextmanager
def matmul_threads() -> Iterator[None]:
    """Run a large matmul on torch's own thread count, also inside :func:`small_ops` (a no-op outside)."""
    if not _outer_threads:
        yield
        return
    with torch_threads(_outer_threads[-1]):
        yield


__all__ = ["SMALL_OP_THREADS", "matmul_threads", "small_ops", "torch_threads"]
