"""Connecting to a Ray cluster, checking it can run the tasks, and splitting hooks into task groups."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pseval.errors import ConfigError, PsevalError

RAY_MISSING_FIX = "install it with pip install 'pseval[ray]', or use --executor local"
CONNECT_TIMEOUT_S = 5.0
"""How long the driver waits for a TCP answer from an explicit cluster address before giving up."""


class TaskFailedError(PsevalError):
    """A task failed for a reason other than the input (its worker died more often than it is retried)."""


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks run and what each reserves."""

    address: str = "local"
    """``local`` starts a cluster on this machine; ``auto`` joins the running one (``ray start``); else an
    address ``HOST:PORT`` or ``ray://HOST:PORT``."""
    cpus_per_task: float | None = None
    """CPUs each task reserves (and the threads it uses on the CPU); unset = see :meth:`resources`."""
    gpus_per_task: float | None = None
    """GPUs each task reserves when the device is cuda; unset = 1 (fractions share a GPU)."""
    n_groups: int | None = None
    """Hook groups (tasks) to split the work into; unset = as many as the cluster runs at once."""
    max_retries: int = 3
    """Times a task whose worker died is started again."""
    num_cpus: int | None = None
    """CPUs of the cluster ``local`` starts; unset = all of this machine's."""
    progress: bool = True
    """Show the live progress display (on stderr)."""

    def resources(self, device: str, ray: Any) -> tuple[float, float]:
        """``(num_cpus, num_gpus)`` each task reserves on ``device`` in the connected cluster.

        Unset, a CPU task takes all the CPUs of the smallest node (one task per node, with as many threads
        as a local run there, which keeps CPU results bit-identical to the local executor's: BLAS sums in
        an order that depends on the thread count), and a GPU task one GPU and its node's share of CPUs.
        """
        gpus = 0.0
        if device.startswith("cuda"):
            gpus = 1.0 if self.gpus_per_task is None else float(self.gpus_per_task)
        if self.cpus_per_task is not None:
            cpus = float(self.cpus_per_task)
        else:
            nodes = [n.get("Resources", {}) for n in alive_nodes(ray)]
            if gpus > 0:
                shares = [r.get("CPU", 0.0) / r["GPU"] * gpus for r in nodes if r.get("GPU", 0.0) >= gpus]
                cpus = float(max(1, math.floor(min(shares)))) if shares else 1.0
            else:
                cpus = float(max(1, math.floor(min((r.get("CPU", 0.0) for r in nodes), default=1.0))))
        if cpus < 0 or gpus < 0 or (cpus == 0 and gpus == 0):
            raise ConfigError("a task must reserve some CPU or GPU", "pass --ray-cpus-per-task 1")
        return cpus, gpus


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs the ray package, which is not installed", RAY_MISSING_FIX
        ) from None
    return ray


@contextlib.contextmanager
def connect(options: RayOptions) -> Iterator[Any]:
    """Connect to (or start) the cluster named by ``options.address`` and yield the ``ray`` module.

    An already initialised Ray (e.g. a test's local cluster) is used as it is and left running; a cluster
    this call connected to or started is disconnected from (and, when local, stopped) on exit.
    """
    ray = import_ray()
    address = options.address
    if address not in ("local", "auto"):
        check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    # Workers' own output (progress bars, library warnings) stays in Ray's logs: the driver shows one display.
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        kwargs.update(num_cpus=options.num_cpus, include_dashboard=False)
        # Ray runs workers at niceness 15 by default; the tasks are the work itself, so they run at the
        # priority the local executor would (Ray's job submission does the same).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(**kwargs)
    else:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot connect to a Ray cluster at --ray-address {address} ({reason.rstrip('.')})",
                "start one with ray start --head, pass its address, or use --ray-address local",
            ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, with one line, when nothing answers at ``HOST:PORT`` (Ray itself retries for long)."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)/?", address)
    if match is None:
        raise ConfigError(
            f"--ray-address {address!r} is not auto, local, HOST:PORT or ray://HOST:PORT",
            "pass e.g. --ray-address 10.0.0.1:6379 (printed by ray start --head)",
        )
    host, port = match.group(1), int(match.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at --ray-address {address} ({exc.strerror or type(exc).__name__})",
            "check the address printed by ray start --head and that its port is open, or use --ray-address local",
        ) from None


def alive_nodes(ray: Any) -> list[dict[str, Any]]:
    """The cluster's alive nodes as Ray describes them."""
    return [node for node in ray.nodes() if node.get("Alive")]


def cluster_gpus(ray: Any) -> float:
    """GPUs in the whole cluster."""
    return float(sum(node.get("Resources", {}).get("GPU", 0.0) for node in alive_nodes(ray)))


def slots(ray: Any, num_cpus: float, num_gpus: float) -> int:
    """How many tasks reserving ``num_cpus`` CPUs and ``num_gpus`` GPUs the cluster runs at once."""
    total = 0
    for node in alive_nodes(ray):
        resources = node.get("Resources", {})
        fits = []
        if num_cpus > 0:
            fits.append(math.floor(resources.get("CPU", 0.0) / num_cpus + 1e-9))
        if num_gpus > 0:
            fits.append(math.floor(resources.get("GPU", 0.0) / num_gpus + 1e-9))
        total += min(fits) if fits else 0
    return total


def check_resources(ray: Any, num_cpus: float, num_gpus: float) -> None:
    """A one-line error when no node can run a task of this size (Ray would wait for one forever)."""
    if slots(ray, num_cpus, num_gpus) >= 1:
        return
    nodes = alive_nodes(ray)
    if num_gpus > 0:
        have = cluster_gpus(ray)
        raise ConfigError(
            f"each task asks for {num_gpus:g} GPU and {num_cpus:g} CPU but no node of the Ray cluster has them "
            f"({have:g} GPU in {len(nodes)} node(s))",
            "pass --device cpu, or add a GPU node with ray start --address HEAD:6379 --num-gpus 1",
        )
    most = max((node.get("Resources", {}).get("CPU", 0.0) for node in nodes), default=0.0)
    raise ConfigError(
        f"each task asks for {num_cpus:g} CPU but the largest node of the Ray cluster has {most:g}",
        f"pass --ray-cpus-per-task {max(1, int(most))} or fewer",
    )


_HOOK_ORDER = re.compile(r"blocks\.(\d+)\.(.*)")
_KIND_ORDER = {"hook_resid_pre": 0, "hook_attn_out": 1, "hook_mlp_out": 2, "hook_resid_post": 3}


def _depth_key(hook: str) -> tuple[int, int, str]:
    match = _HOOK_ORDER.fullmatch(hook)
    if match is None:
        return (1 << 30, 0, hook)
    return (int(match.group(1)), _KIND_ORDER.get(match.group(2), 9), hook)


def split_hooks(weights: dict[str, int], n_groups: int) -> list[list[str]]:
    """Split hooks into at most ``n_groups`` groups of neighbouring layers with about equal total weight.

    ``weights`` is the number of SAEs at each hook. Neighbouring layers go together because a group's
    forward passes stop after its deepest layer, so shallow groups stay cheap.
    """
    hooks = sorted(weights, key=_depth_key)
    n = max(1, min(n_groups, len(hooks)))
    total = sum(max(1, weights[h]) for h in hooks)
    groups: list[list[str]] = [[] for _ in range(n)]
    cumulative = 0
    for index, hook in enumerate(hooks):
        # The group whose share of the total this hook's midpoint falls in, leaving room for one hook per group.
        midpoint = cumulative + max(1, weights[hook]) / 2
        group = min(int(midpoint * n / total), n - 1)
        group = max(group, n - (len(hooks) - index))
        previous = next((g for g in range(n - 1, -1, -1) if groups[g]), -1)
        group = max(min(group, previous + 1), previous if previous >= 0 else 0)
        groups[group].append(hook)
        cumulative += max(1, weights[hook])
    return [g for g in groups if g]


def describe_hooks(hooks: Sequence[str]) -> str:
    """``blocks.0.hook_resid_post … blocks.9.hook_mlp_out (6 hooks)`` for a display."""
    ordered = sorted(hooks, key=_depth_key)
    if len(ordered) == 1:
        return ordered[0]
    return f"{_short_hook(ordered[0])} … {_short_hook(ordered[-1])} ({len(ordered)} hooks)"


def _short_hook(hook: str) -> str:
    match = _HOOK_ORDER.fullmatch(hook)
    return f"L{match.group(1)} {match.group(2).removeprefix('hook_')}" if match else hook
