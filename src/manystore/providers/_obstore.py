"""obstore plumbing shared by the providers built on it: fork safety and streaming writers.

obstore (0.12) keeps one process-wide tokio runtime and never rebuilds it after ``fork()``:
a child forked while that runtime runs hangs on its first request. At fork time we note
whether the runtime's worker threads exist (Linux: ``/proc``; elsewhere: whether obstore
was used). Such a child loads a private copy of obstore's extension module, which brings
its own fresh runtime (~15 MB, ~10 ms), so DataLoader-style forked workers keep working.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any

import obstore as obs
from obstore.store import S3Store

from ..errors import ManystoreError

__all__ = ["ObstoreForkError", "ObstoreWriter", "obstore_api"]


class ObstoreForkError(ManystoreError, RuntimeError):
    """obstore cannot be used in this forked process (its private copy could not be loaded)."""


_fork_state: dict[str, Any] = {"live_at_fork": False, "broken": False, "used_here": False, "private": None}
_fork_lock = threading.Lock()


def _runtime_threads_running() -> bool:
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return bool(_fork_state["used_here"])
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as fh:
            if fh.read().startswith("tokio-"):
                return True
    return False


def _before_fork() -> None:
    _fork_state["live_at_fork"] = _fork_state["broken"] or _runtime_threads_running()


def _after_fork_in_child() -> None:
    global _fork_lock
    _fork_lock = threading.Lock()
    _fork_state.update(broken=_fork_state["live_at_fork"], used_here=False, private=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _load_private_obstore() -> Any:
    import importlib.machinery
    import importlib.util
    import shutil

    source = obs._obstore.__file__
    tmpdir = tempfile.mkdtemp(prefix="manystore-obstore-")
    try:
        path = os.path.join(tmpdir, os.path.basename(source))
        shutil.copyfile(source, path)
        loader = importlib.machinery.ExtensionFileLoader("obstore._obstore", path)
        spec = importlib.util.spec_from_file_location("obstore._obstore", path, loader=loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        loader.exec_module(module)
        module._store.S3Store  # noqa: B018 - fail here if the layout differs
        return module
    except Exception as err:
        raise ObstoreForkError(
            f"process {os.getpid()} was forked while obstore's I/O runtime was running in its parent, "
            f"and loading a private copy of obstore failed ({err}). Start workers with the 'spawn' or "
            "'forkserver' multiprocessing method, or fork before the first storage request"
        ) from err
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def obstore_api() -> tuple[Any, Any]:
    """``(functions, S3Store class)`` of an obstore usable in this process.

    Normally the ``obstore`` package itself; in a child forked while obstore's runtime was running,
    a private copy of its extension module (``get``, ``put``, ``list``... have the same signatures).

    Raises:
        ObstoreForkError: Forked child and the private copy cannot be loaded (e.g. ``noexec`` tmp dir).
    """
    if not _fork_state["broken"]:
        _fork_state["used_here"] = True
        return obs, S3Store
    with _fork_lock:
        if _fork_state["private"] is None:
            _fork_state["private"] = _load_private_obstore()
    module = _fork_state["private"]
    return module, module._store.S3Store


class ObstoreWriter:
    """A streaming multipart upload through ``obstore.open_writer``.

    Parts are uploaded while the caller writes (at most ``buffer_size`` x ``max_concurrency``
    bytes in memory); :meth:`close` completes the upload, :meth:`abort` aborts it so no object
    and no dangling multipart upload remain.
    """

    def __init__(self, raw: Any, url: str, translate: Any) -> None:
        self._raw, self._url, self._translate = raw, url, translate
        self._done = False

    def write(self, data: Any) -> int:
        try:
            return int(self._raw.write(data))
        except Exception as err:
            self.abort()
            raise self._translate(err, self._url)

    def close(self) -> None:
        if self._done:
            return
        try:
            self._raw.close()
            self._done = True
        except Exception as err:
            self.abort()
            raise self._translate(err, self._url)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        reason = RuntimeError("upload aborted")
        with contextlib.suppress(Exception):
            self._raw.__exit__(RuntimeError, reason, None)
