"""Progress of long loops (activation collection, harvesting) through one replaceable callback.

Library code reports progress with :func:`task`; nothing is shown unless a reporter is installed with
:func:`set_reporter`. The command line installs :func:`stderr_reporter`: a rich progress bar on stderr when
stderr is a terminal, otherwise a line per quarter at most every 10 s (so logs stay short), and nothing at
all for loops that finish within a couple of seconds.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class ProgressTask(Protocol):
    """One running loop: ``advance(n)`` after each step, ``close()`` at the end."""

    def advance(self, n: int) -> None: ...
    def close(self) -> None: ...


Reporter = Callable[[str, int, str], ProgressTask]
"""``reporter(description, total, unit)`` starts showing one loop's progress."""

_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter`` (``None`` = silent) and return the previous one."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


@contextlib.contextmanager
def task(description: str, total: int, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` for a loop of ``total`` units; a no-op when no reporter is installed."""
    reporter = _reporter
    if reporter is None or total <= 0:
        yield lambda _n: None
        return
    running = reporter(description, total, unit)
    try:
        yield running.advance
    finally:
        running.close()


class _RichTask:
    """A rich progress bar on stderr that appears only once the loop has run for ``delay_s``."""

    def __init__(self, description: str, total: int, unit: str, delay_s: float = 1.0) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.description, self.total, self.unit = description, total, unit
        self.started = time.monotonic()
        self.delay_s = delay_s
        self.done = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task_id: int | None = None

    def advance(self, n: int) -> None:
        self.done += n
        if (
            self.task_id is None
            and time.monotonic() - self.started >= self.delay_s
            and self.done < self.total
        ):
            self.progress.start()
            self.task_id = self.progress.add_task(self.description, total=self.total, completed=self.done)
        elif self.task_id is not None:
            self.progress.update(self.task_id, completed=self.done)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.task_id is not None:
            self.progress.stop()


class _LineTask:
    """Plain lines for logs: at each quarter, at most every ``every_s`` seconds, none for quick loops."""

    def __init__(self, description: str, total: int, unit: str, every_s: float = 10.0) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.started = self.last = time.monotonic()
        self.every_s = every_s
        self.done = 0
        self.next_quarter = 1

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        quarter = 4 * self.done // self.total
        if quarter >= self.next_quarter and now - self.last >= self.every_s:
            self.next_quarter = quarter + 1
            self.last = now
            print(
                f"{self.description}: {self.done:,}/{self.total:,} {self.unit} ({now - self.started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.every_s:
            print(f"{self.description}: done in {elapsed:.0f} s", file=sys.stderr, flush=True)


def stderr_reporter(description: str, total: int, unit: str) -> ProgressTask:
    """The command line's reporter: a bar on a terminal, a few lines otherwise."""
    if sys.stderr.isatty():
        return _RichTask(description, total, unit)
    return _LineTask(description, total, unit)


def track(
    items: Iterable[T],
    description: str,
    total: int,
    unit: str = "items",
    size: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Yield ``items``, reporting ``size(item)`` units (1 by default) after each one.

    An item counts as done when the loop asks for the next one or leaves (``break`` after its last item).
    """
    with task(description, total, unit) as advance:
        for item in items:
            try:
                yield item
            finally:
                advance(size(item) if size is not None else 1)
