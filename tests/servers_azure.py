"""Azurite (Microsoft's Azure Storage emulator, blob service only) on 127.0.0.1 for the tests.

Install once per checkout: ``npm install --prefix .tools/azurite azurite@3`` (``make test`` does it).
:func:`start` runs ``azurite-blob`` on a free port with a temporary data directory and creates
the container :data:`CONTAINER`; :func:`profile` returns a manystore profile for it.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from .servers import free_port

__all__ = ["CONTAINER", "AzuriteServer", "find_azurite", "profile", "start"]

CONTAINER = "manystore-test"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT = 60.0
_REPO = Path(__file__).resolve().parent.parent


def find_azurite() -> str | None:
    """``<repo>/.tools/azurite/node_modules/.bin/azurite-blob``, else ``azurite-blob`` on ``$PATH``."""
    local = _REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.is_file():
        return str(local)
    return shutil.which("azurite-blob")


@dataclass
class AzuriteServer:
    """A running Azurite blob service.

    Attributes:
        endpoint_url: ``http://127.0.0.1:PORT/devstoreaccount1`` (path-style account URL).
        connection_string: Azurite's well-known development connection string for this port.
        enforces_conditional_writes: Azurite honours ``If-None-Match: *`` and ``If-Match``.
    """

    endpoint_url: str
    port: int
    connection_string: str
    enforces_conditional_writes: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    work_dir: str | None = field(default=None, repr=False)

    def log(self) -> str:
        """Azurite's captured output so far."""
        path = os.path.join(self.work_dir or "", "azurite.log")
        return Path(path).read_text(errors="replace") if os.path.exists(path) else ""

    def request(self, method: str, path: str, query: dict[str, str] | None = None) -> int:
        """Send a SharedKey-signed request without a body (e.g. create a container); returns the status."""
        query = query or {}
        date = formatdate(usegmt=True)
        headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
        canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{ACCOUNT}/{ACCOUNT}/{path}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
        content_type = "application/octet-stream" if method == "PUT" else ""
        to_sign = f"{method}\n" + "\n" * 4 + f"{content_type}\n" + "\n" * 6 + canon_headers + resource
        mac = hmac.new(base64.b64decode(ACCOUNT_KEY), to_sign.encode(), hashlib.sha256).digest()
        if content_type:
            headers["Content-Type"] = content_type
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{base64.b64encode(mac).decode()}"
        url = f"{self.endpoint_url}/{path}" + (
            "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        )
        req = urllib.request.Request(
            url, method=method, headers=headers, data=b"" if method == "PUT" else None
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    def create_container(self, name: str) -> None:
        """Create container ``name`` (an existing one is fine)."""
        status = self.request("PUT", name, {"restype": "container"})
        if status not in (201, 409):
            raise RuntimeError(f"azurite: creating container {name!r} answered {status}")

    def stop(self) -> None:
        """Terminate Azurite and remove its data directory. Idempotent."""
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


def start() -> AzuriteServer:
    """Start ``azurite-blob`` on a free port, wait until it answers, create :data:`CONTAINER`.

    Raises:
        RuntimeError: Azurite is not installed or did not come up.
    """
    binary = find_azurite()
    if binary is None:
        raise RuntimeError(
            "azurite not installed: run make test (npm install --prefix .tools/azurite azurite@3)"
        )
    work = tempfile.mkdtemp(prefix="manystore-azurite-")
    port = free_port()
    cmd = [
        binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", os.path.join(work, "data"),
        "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent",
    ]  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    with open(os.path.join(work, "azurite.log"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = AzuriteServer(
        endpoint_url=endpoint,
        port=port,
        connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
        ),
        process=proc,
        work_dir=work,
    )
    atexit.register(server.stop)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            log_text = server.log()
            server.stop()
            raise RuntimeError(f"azurite exited during startup:\n{log_text}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                break
        except urllib.error.HTTPError:
            break  # Any HTTP answer means it is serving.
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                log_text = server.log()
                server.stop()
                raise RuntimeError(f"azurite did not answer within {STARTUP_TIMEOUT}s:\n{log_text}")
            time.sleep(0.1)
    server.create_container(CONTAINER)
    return server


def profile(server: AzuriteServer, base: str, **options: Any) -> dict[str, Any]:
    """A manystore profile for ``CONTAINER/base`` on ``server`` with its connection string."""
    return {
        "storage_provider": {
            "type": "azure",
            "options": {"endpoint_url": server.endpoint_url, "base_path": f"{CONTAINER}/{base}", **options},
        },
        "credentials_provider": {
            "type": "AzureCredentials",
            "options": {"connection": server.connection_string},
        },
        "retry": {"attempts": 3, "delay": 0.05},
    }


if __name__ == "__main__":  # Manual check: python -m tests.servers_azure
    srv = start()
    try:
        print(srv)
    finally:
        srv.stop()
