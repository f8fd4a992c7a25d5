"""One progress display over all tasks, and the driver loop that waits for them.

Tasks report to a :class:`ProgressBoard` (a small Ray actor holding no CPU): when an attempt starts and
where, and their status lines. The driver counts finished SAEs from the result files appearing in the
shared results folder, and renders both with rich on stderr.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pseval.distributed.cluster import TaskFailedError, describe_hooks
from pseval.errors import PsevalError

POLL_S = 0.5


class ProgressBoard:
    """Per-group state reported by the tasks: attempts, where the last attempt runs, its last message."""

    def __init__(self) -> None:
        self.groups: dict[int, dict[str, Any]] = {}

    def _group(self, group: int) -> dict[str, Any]:
        return self.groups.setdefault(group, {"attempts": 0, "message": "", "where": None})

    def started(self, group: int, where: dict[str, Any]) -> int:
        """Record an attempt of ``group`` starting at ``where``; return its number (1 for the first)."""
        entry = self._group(group)
        entry["attempts"] += 1
        entry["where"] = where
        entry["message"] = "started"
        return int(entry["attempts"])

    def message(self, group: int, text: str) -> None:
        self._group(group)["message"] = text

    def snapshot(self) -> dict[int, dict[str, Any]]:
        return self.groups


@dataclass
class GroupTask:
    """One submitted hook group as the driver tracks it."""

    index: int
    hooks: list[str]
    result_files: list[Path]
    """The result files this group writes (the SAEs it still has to finish)."""
    ref: Any = None
    state: str = "pending"
    done_files: set[Path] = field(default_factory=set)
    outcome: Any = None
    error: BaseException | None = None


def where_text(where: dict[str, Any] | None) -> str:
    """``host (10.0.0.2) · cuda:0 NVIDIA H200`` for a display."""
    if not where:
        return "–"
    device = where.get("device", "?")
    if where.get("device_name"):
        device = f"{device} {where['device_name']}"
    elif "torch_threads" in where:
        device = f"{device} ×{where['torch_threads']} threads"
    return f"{where.get('hostname', '?')} ({where.get('node_ip', '?')}) · {device}"


def run_tasks(
    ray: Any,
    tasks: Sequence[GroupTask],
    board: Any,
    n_total: int,
    n_done_before: int,
    started_at: float,
    show: bool,
    status: Callable[[str], None],
    title: str,
) -> None:
    """Wait for every task, keeping the display current; set each task's outcome or error."""
    by_ref = {task.ref: task for task in tasks}
    pending = list(by_ref)
    display = _TaskDisplay(ray, tasks, board, n_total, n_done_before, started_at, title)
    live = None
    if show:
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        display.width = console.width
        live = Live(display.render(), console=console, refresh_per_second=4, transient=False)
        live.start()
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in ready:
                _collect(ray, ref, by_ref[ref], status)
            display.refresh()
            if live is not None:
                live.update(display.render())
    finally:
        if live is not None:
            display.refresh()
            live.update(display.render())
            live.stop()
    for task in tasks:
        if task.outcome is not None:
            task.outcome.setdefault("attempts", int(display.snapshot.get(task.index, {}).get("attempts", 1)))


def _collect(ray: Any, ref: Any, task: GroupTask, status: Callable[[str], None]) -> None:
    """The outcome of a finished task, or its error as a user-facing one."""
    try:
        task.outcome = ray.get(ref)
        task.state = "done"
    except Exception as exc:
        task.error = _user_error(ray, exc, task)
        task.state = "failed"
        status(f"group {task.index} failed: {task.error}")


@dataclass
class _TaskDisplay:
    """The tasks as the board and the result files show them, rendered as a rich table."""

    ray: Any
    tasks: Sequence[GroupTask]
    board: Any
    n_total: int
    n_done_before: int
    started_at: float
    title: str
    snapshot: dict[int, dict[str, Any]] = field(default_factory=dict)
    width: int = 120

    def refresh(self) -> None:
        """Read the board and look for new result files; a task with an attempt is running."""
        with contextlib.suppress(Exception):  # the display is best effort; results never depend on it
            self.snapshot = self.ray.get(self.board.snapshot.remote(), timeout=5)
        for task in self.tasks:
            for path in task.result_files:
                if (
                    path not in task.done_files
                    and path.exists()
                    and path.stat().st_mtime >= self.started_at - 1
                ):
                    task.done_files.add(path)
            entry = self.snapshot.get(task.index, {})
            if task.state == "pending" and entry.get("attempts"):
                task.state = "running"

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tasks = self.tasks
        done = self.n_done_before + sum(len(t.done_files) for t in tasks)
        elapsed = time.time() - self.started_at
        finished_tasks = sum(t.state in ("done", "failed") for t in tasks)
        table = Table(title_justify="left", expand=False, show_edge=False, pad_edge=False)
        # Cut the long cells to the terminal ourselves: rich would rather squeeze the short columns away.
        free = max(30, self.width - 40)
        cut = {"hooks": free * 3 // 10, "where": free * 3 // 10, "last step": free * 4 // 10}
        for column in ("group", "hooks", "SAEs", "state", "where", "last step"):
            table.add_column(column, justify="right" if column in ("group", "SAEs") else "left", no_wrap=True)
        for task in tasks:
            entry = self.snapshot.get(task.index, {})
            state = task.state
            attempts = int(entry.get("attempts", 0))
            if state == "running" and attempts > 1:
                state = f"retry {attempts - 1}"
            table.add_row(
                str(task.index),
                _cut(describe_hooks(task.hooks), cut["hooks"]),
                f"{len(task.done_files)}/{len(task.result_files)}",
                state,
                _cut(where_text(entry.get("where")), cut["where"]),
                _cut(str(entry.get("message", "")), cut["last step"]),
            )
        head = Text(
            f"{self.title}: SAEs finished {done}/{self.n_total} · groups done {finished_tasks}/{len(tasks)} · "
            f"{elapsed:,.0f} s"
        )
        return Group(head, table)


def _cut(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, with an ellipsis when cut."""
    return text if len(text) <= n else text[: max(0, n - 1)] + "…"


def _user_error(ray: Any, exc: BaseException, task: GroupTask) -> BaseException:
    """The task's own PsevalError when it raised one, else a one-line TaskFailedError."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, PsevalError):
        return cause
    if isinstance(exc, PsevalError):
        return exc
    reason = str(cause if cause is not None else exc).strip().splitlines()
    text = reason[-1] if reason else type(exc).__name__
    return TaskFailedError(
        f"the task of hook group {task.index} ({describe_hooks(task.hooks)}) failed: "
        f"{type(cause or exc).__name__}: {text[:300]}",
        "rerun the same command: finished SAEs are kept and only what is missing runs",
    )


def raise_first_error(tasks: Sequence[GroupTask]) -> None:
    """Raise the first task's error once all tasks are over (the others' finished work is kept)."""
    for task in tasks:
        if task.error is not None:
            raise task.error
