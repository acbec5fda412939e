"""Temporary files written beside their destination, renamed over it when complete.

A temp file's name carries the writer's pid, so a later run can tell the leftovers of a
killed process (safe to remove) from the files of a writer still at work.
"""

from __future__ import annotations

import itertools
import os
import threading

__all__ = ["TEMP_SUFFIX", "temp_counter", "temp_file_beside", "temp_name", "temp_tag", "writer_alive"]

#: Suffix of in-flight temporary files; listings skip them.
TEMP_SUFFIX = ".manystore-tmp"
#: Numbers temp names (with :func:`temp_tag`) so that no two of one thread collide.
temp_counter = itertools.count()
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def temp_tag() -> str:
    """``pid-thread``: this writer's part of a temp name (``.NAME.TAG-N`` + :data:`TEMP_SUFFIX`)."""
    return f"{_pid}-{threading.get_ident()}"


def temp_name(name: str) -> str:
    """A new temp file name for the file ``name`` (in the same directory), naming this writer."""
    return f".{name}.{_pid}-{threading.get_ident()}-{next(temp_counter)}{TEMP_SUFFIX}"


def temp_file_beside(destination: str) -> tuple[int, str]:
    """Create a new, unique temp file beside ``destination`` (mode 0o666 less the umask)."""
    directory, name = os.path.split(destination)
    while True:
        tmp = os.path.join(directory or ".", temp_name(name))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:  # a stale temp file of a dead process with a recycled pid
            continue


def writer_alive(temp_name: str) -> bool:
    """Whether the process that created temp file ``temp_name`` (see :func:`temp_file_beside`) runs."""
    token = temp_name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
    try:
        pid = int(token.split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
