"""A local Google Cloud Storage server for the test suite: ``gcp-storage-emulator`` (in-memory).

``start()`` runs the emulator as a subprocess on a free 127.0.0.1 port, waits until it answers
and creates the bucket ``manystore-test``; ``profile(server, base)`` is a manystore profile on it.

Emulator quirks (checked by ``tests/test_provider_gcs.py``): it ignores ``ifGenerationMatch``
preconditions on writes, reads and deletes, ignores ``startOffset``/``endOffset`` in listings
and sends no ``x-goog-generation`` header on downloads.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .servers import free_port

__all__ = ["BUCKET", "GcsEmulator", "profile", "start"]

BUCKET = "manystore-test"
STARTUP_TIMEOUT = 30.0


@dataclass
class GcsEmulator:
    """A running gcp-storage-emulator.

    Attributes:
        endpoint_url: ``http://127.0.0.1:PORT``.
        enforces_conditional_writes: False: the emulator ignores ``ifGenerationMatch``.
    """

    endpoint_url: str
    enforces_conditional_writes: bool = False
    name: str = "gcp-storage-emulator"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    work_dir: str | None = field(default=None, repr=False)

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` for this emulator (anonymous)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (an existing bucket is fine)."""
        from google.api_core.exceptions import Conflict

        try:
            self.client().create_bucket(name)
        except Conflict:
            pass

    def log(self) -> str:
        """The emulator's captured output so far."""
        if not self.work_dir:
            return ""
        path = Path(self.work_dir) / "emulator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Terminate the emulator and remove its work directory. Idempotent."""
        atexit.unregister(self.stop)
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None


def _emulator_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "gcp-storage-emulator"
    if script.exists():
        head = [str(script)]
    else:
        found = shutil.which("gcp-storage-emulator")
        if found is None:
            raise RuntimeError("gcp-storage-emulator not found (pip install gcp-storage-emulator)")
        head = [found]
    return [*head, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"]


def start() -> GcsEmulator:
    """Start the emulator on a free port and create bucket ``manystore-test``.

    Raises:
        RuntimeError: The emulator is not installed or did not come up.
    """
    port = free_port()
    work = tempfile.mkdtemp(prefix="manystore-gcs-")
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    with open(os.path.join(work, "emulator.log"), "wb") as log:
        proc = subprocess.Popen(
            _emulator_command(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    server = GcsEmulator(endpoint_url=f"http://127.0.0.1:{port}", process=proc, work_dir=work)
    atexit.register(server.stop)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            log_text = server.log()
            server.stop()
            raise RuntimeError(f"gcp-storage-emulator exited during startup:\n{log_text}")
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/storage/v1/b?project=test", timeout=2):
                break
        except urllib.error.HTTPError:
            break  # any HTTP answer means it is serving
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                log_text = server.log()
                server.stop()
                raise RuntimeError(
                    f"gcp-storage-emulator did not answer within {STARTUP_TIMEOUT}s:\n{log_text}"
                )
            time.sleep(0.1)
    server.create_bucket(BUCKET)
    return server


def profile(server: GcsEmulator, base: str, **options: Any) -> dict[str, Any]:
    """A manystore profile rooted at ``manystore-test/<base>`` on ``server``."""
    return {
        "storage_provider": {
            "type": "gcs",
            "options": {
                "endpoint_url": server.endpoint_url,
                "project_id": "test",
                "base_path": f"{BUCKET}/{base}",
                **options,
            },
        },
        "retry": {"attempts": 3, "delay": 0.05},
    }
