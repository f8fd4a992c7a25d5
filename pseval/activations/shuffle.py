"""The bounded shuffling buffer the activation store hands training batches out of."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

from pseval.errors import ConfigError


class ShuffleBuffer:
    """A bounded shuffling buffer of ``capacity`` rows.

    It is filled from the incoming chunks; then, repeatedly, ``capacity // 2`` rows chosen at random are
    handed out in batches and their slots refilled with the next incoming rows. Batches therefore mix
    rows from many contexts, and memory never exceeds ``capacity`` rows (plus the chunk being copied in
    and the batch being handed out). Rows are handed out exactly once.
    """

    def __init__(
        self,
        capacity: int,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity < 2:
            raise ConfigError(f"buffer_tokens={capacity} is too small", "use a buffer of at least 2 rows")
        self.capacity = capacity
        self.dtype = dtype
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer: torch.Tensor | None = None
        """The buffer while batches are being handed out (``[capacity, D]``), else None."""
        self.peak_rows = 0
        """The most rows the buffer ever held (its allocated size)."""
        self.max_chunk_rows = 0
        """The largest incoming chunk seen (the only other rows held at once)."""

    def batches(
        self, chunks: Iterator[torch.Tensor], batch_size: int, drop_last: bool = False
    ) -> Iterator[torch.Tensor]:
        """Shuffle the rows of ``chunks`` (each ``[n, D]``) into float32 batches ``[batch_size, D]``.

        All rows are handed out; the last batch is shorter unless ``drop_last``.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be positive", "use a batch size of at least 1")
        if self.capacity < 2 * batch_size:
            raise ConfigError(
                f"buffer_tokens={self.capacity} is smaller than two batches of {batch_size}",
                f"raise buffer_tokens to at least {2 * batch_size} (ideally many batches)",
            )
        first = next(chunks, None)
        if first is None:
            return
        chunks = itertools.chain([first], chunks)
        self.buffer = torch.empty(self.capacity, first.shape[-1], dtype=self.dtype, device=self.device)
        self.peak_rows = max(self.peak_rows, self.capacity)
        pending: list[torch.Tensor | None] = [None]

        def fill(slots_S: torch.Tensor) -> int:
            """Write incoming rows into ``slots_S`` in order; return how many slots were filled."""
            assert self.buffer is not None
            filled = 0
            while filled < slots_S.shape[0]:
                rows = pending[0]
                if rows is None or rows.shape[0] == 0:
                    rows = next(chunks, None)
                    if rows is None:
                        return filled
                    self.max_chunk_rows = max(self.max_chunk_rows, rows.shape[0])
                take = min(rows.shape[0], slots_S.shape[0] - filled)
                index = slots_S[filled : filled + take].to(self.device)
                self.buffer[index] = rows[:take].to(device=self.device, dtype=self.dtype)
                pending[0] = rows[take:]
                filled += take
            return filled

        def drain(slots_S: torch.Tensor) -> Iterator[torch.Tensor]:
            assert self.buffer is not None
            order = slots_S[torch.randperm(slots_S.shape[0], generator=self.generator)].to(self.device)
            for start in range(0, order.shape[0], batch_size):
                index = order[start : start + batch_size]
                if drop_last and index.shape[0] < batch_size:
                    return
                yield self.buffer[index].float()

        try:
            n_filled = fill(torch.arange(self.capacity))
            if n_filled < self.capacity:
                yield from drain(torch.arange(n_filled))
                return
            half = max(batch_size, (self.capacity // 2) // batch_size * batch_size)
            while True:
                slots = torch.randperm(self.capacity, generator=self.generator)[:half]
                slots_dev = slots.to(self.device)
                for start in range(0, half, batch_size):
                    yield self.buffer[slots_dev[start : start + batch_size]].float()
                n_filled = fill(slots)
                if n_filled < half:
                    keep = torch.ones(self.capacity, dtype=torch.bool)
                    keep[slots[n_filled:]] = False
                    yield from drain(keep.nonzero().squeeze(1))
                    return
        finally:
            self.buffer = None
