"""Where a sync's partitions run: worker processes on this machine, or a Ray cluster.

Both executors take the same picklable call (:func:`~manystore.mirror.work.sync_partition`)
and hand back :class:`concurrent.futures.Future` s, so the driver in :mod:`manystore.mirror`
treats them alike. Clients cross to the workers pickled: their configuration travels, never an open
connection, and every worker builds its own.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ..errors import ConfigError, ManystoreError

__all__ = ["ProcessExecutor", "RayExecutor", "SyncExecutor"]

EXECUTIONS = ("local", "ray")


class SyncExecutor:
    """Runs picklable calls somewhere and returns futures."""

    #: Number of calls that can run at once.
    slots: int = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Start ``fn(*args)``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers."""


class ProcessExecutor(SyncExecutor):
    """``processes`` fresh interpreters (``spawn``: safe whatever threads the parent runs)."""

    def __init__(self, processes: int) -> None:
        self.slots = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(SyncExecutor):
    """Ray tasks (one CPU each) on the cluster at ``address``.

    Connects with ``ray.init(address=...)`` unless Ray is already initialised in this
    process; ``None`` starts a local instance (or joins the one ``RAY_ADDRESS`` names).
    A Ray runtime started here is shut down by :meth:`close`. Workers on other machines
    must reach the same stores: a POSIX profile there means that machine's file system.
    """

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as err:
            raise ManystoreError(
                "execution='ray' needs Ray: pip install 'manystore[ray]' (or pip install ray)"
            ) from err
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
            except Exception as err:  # ConnectionError and friends: say which cluster
                raise ManystoreError(f"cannot connect to the Ray cluster at {address!r}: {err}") from err
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remotes: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(num_cpus=1, max_retries=2)(fn)
        future: Future[Any] = remote.remote(*args).future()
        return future

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(execution: str, processes: int | None, ray_address: str | None) -> SyncExecutor | None:
    """The executor for ``execution`` (``None``: threads in this process).

    Raises:
        ConfigError: Unknown ``execution`` or a bad process count.
    """
    if execution not in EXECUTIONS:
        raise ConfigError(f"sync execution must be one of {list(EXECUTIONS)}, got {execution!r}")
    if execution == "ray":
        return RayExecutor(ray_address)
    if ray_address is not None:
        raise ConfigError(f"ray_address={ray_address!r} given without execution='ray'")
    if processes is None or processes <= 1:
        if processes is not None and processes < 1:
            raise ConfigError(f"num_worker_processes must be >= 1, got {processes!r}")
        return None
    return ProcessExecutor(processes)
