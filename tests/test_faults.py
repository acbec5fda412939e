"""Fault injection: every operation either returns exact results or raises, and never loses bytes.

A :class:`FaultProxy` sits between the client and a real S3 server (rclone; moto where
multipart uploads or conditional requests matter) and injects error statuses, dropped
connections, mid-body resets, truncated bodies (full ``Content-Length``), latency and
stalled sockets. Each test asserts the exact outcome: reads return the right bytes
(sha256) or raise; writes land exactly or leave no object and no multipart upload behind.

A module-level tally (faults injected by kind, operations that survived, bytes lost) is
written at the end of the module to the JSON file named by ``MANYSTORE_RELIABILITY_REPORT``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import manystore.file
from manystore import StorageClient, StorageClientConfig
from manystore.errors import ManystoreError, PreconditionFailedError, RetryableError
from manystore.types import Range

from .conftest import s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server

MiB = 1 << 20
BLOCK = 64 << 10  # ObjectFile's streaming block size in these tests (patched down from 8 MiB)
ATTEMPTS = 4


@dataclass
class Tally:
    """What the fault tests did, for docs/reliability.md.

    Every run ends in exactly one outcome, recorded with :meth:`survive` or :meth:`raise_clean`;
    the run count of an operation is derived from them, so the table's rows add up.
    """

    injected: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    survived: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    bytes_checked: int = 0
    bytes_lost: int = 0

    def survive(self, op: str, expected: bytes, got: bytes) -> None:
        """One run of ``op`` that returned: counted once, with its bytes checked against ``expected``."""
        self.operations[op] += 1
        self.survived[op] += 1
        self.check_bytes(expected, got)

    def raise_clean(self, op: str) -> None:
        """One run of ``op`` that raised and left storage unchanged: counted once."""
        self.operations[op] += 1
        self.raised[op] += 1

    def check_bytes(self, expected: bytes, got: bytes) -> None:
        """Add ``expected`` to the bytes checked, and what ``got`` lacks of it to the bytes lost."""
        self.bytes_checked += len(expected)
        self.bytes_lost += lost(expected, got)

    def as_dict(self) -> dict[str, Any]:
        return {
            "injected": dict(sorted(self.injected.items())),
            "injected_total": sum(self.injected.values()),
            "operations": dict(sorted(self.operations.items())),
            "operations_total": sum(self.operations.values()),
            "survived": dict(sorted(self.survived.items())),
            "survived_total": sum(self.survived.values()),
            "raised_cleanly": dict(sorted(self.raised.items())),
            "raised_cleanly_total": sum(self.raised.values()),
            "bytes_checked": self.bytes_checked,
            "bytes_lost": self.bytes_lost,
        }


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _write_tally() -> Iterator[None]:
    yield
    target = os.environ.get("MANYSTORE_RELIABILITY_REPORT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(TALLY.as_dict(), indent=2) + "\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int | None = None) -> bytes:
    return random.Random(seed if seed is not None else size).randbytes(size)


def lost(expected: bytes, got: bytes) -> int:
    """Bytes missing or different in ``got`` (0 when identical)."""
    if sha(expected) == sha(got):
        return 0
    same = sum(1 for a, b in zip(expected, got, strict=False) if a == b)
    return max(len(expected), len(got)) - same


def record(op: str, expected: bytes, got: bytes) -> None:
    TALLY.survive(op, expected, got)


@dataclass
class Rig:
    """A proxied client, a direct (fault-free) client on the same prefix, and the proxy."""

    server: S3Server
    proxy: FaultProxy
    base: str
    options: dict[str, Any]
    attempts: int = ATTEMPTS

    def client(
        self, attempts: int | None = None, endpoint: str | None = None, **options: Any
    ) -> StorageClient:
        profile = s3_profile(self.server, self.base, **{**self.options, **options})
        profile["storage_provider"]["options"]["endpoint_url"] = endpoint or self.proxy.url
        profile["retry"] = {"attempts": attempts or self.attempts, "delay": 0.005, "backoff_multiplier": 1.5}
        return StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))

    def direct(self) -> StorageClient:
        profile = s3_profile(self.server, self.base, **self.options)
        return StorageClient(StorageClientConfig.from_dict({"profiles": {"d": profile}}, "d"))

    def dangling_uploads(self) -> list[str]:
        bucket, _, prefix = self.base.partition("/")
        answer = self.server.boto3_client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return [u["Key"] for u in answer.get("Uploads", [])]


def _rig(server: S3Server, **options: Any) -> Iterator[Rig]:
    proxy = FaultProxy(server.endpoint_url)
    options = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB, **options}
    rig = Rig(server, proxy, f"manystore-test/faults-{uuid.uuid4().hex}", options)
    try:
        yield rig
    finally:
        proxy.close()
        TALLY.injected.update(proxy.injected)


@pytest.fixture
def rclone(rclone_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(manystore.file, "READ_BLOCK_SIZE", BLOCK)
    yield from _rig(rclone_server)


@pytest.fixture
def moto(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(manystore.file, "READ_BLOCK_SIZE", BLOCK)
    yield from _rig(moto_server)


# ---------------------------------------------------------------------------- operations
# Each operation: (setup on the direct client, the faulted call, verification). ``method``/``path``
# restrict the injected faults to the requests that carry the operation's payload.


@dataclass
class Op:
    name: str
    method: str
    path: str | None
    run: Callable[[Rig, StorageClient, Path], None]
    writes: bool = False


SMALL = payload(300_000, 1)
BIG = payload(11 * MiB + 123, 2)


def _read_whole(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("obj", SMALL)
    got = client.read("obj")
    assert sha(got) == sha(SMALL)
    record("read", SMALL, got)


def _read_range(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("obj", SMALL)
    got = client.read("obj", Range(12_345, 100_000))
    assert sha(got) == sha(SMALL[12_345:112_345])
    record("read_range", SMALL[12_345:112_345], got)


def _read_stream(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("obj", SMALL)
    with client.open("obj", "rb", memory_load_limit=0) as fh:
        assert isinstance(fh, manystore.file.ObjectFile)
        got = fh.read()
    assert sha(got) == sha(SMALL)
    record("open_stream", SMALL, got)


def _write(rig: Rig, client: StorageClient, tmp: Path) -> None:
    client.write("obj", SMALL)
    got = rig.direct().read("obj")
    assert sha(got) == sha(SMALL)
    record("write", SMALL, got)


def _upload_multipart(rig: Rig, client: StorageClient, tmp: Path) -> None:
    source = tmp / "big.bin"
    source.write_bytes(BIG)
    client.upload_file("obj", str(source))
    got = rig.direct().read("obj")
    assert sha(got) == sha(BIG)
    record("upload_multipart", BIG, got)


def _open_wb(rig: Rig, client: StorageClient, tmp: Path) -> None:
    with client.open("obj", "wb") as fh:
        for start in range(0, len(SMALL), 50_000):
            fh.write(SMALL[start : start + 50_000])
    got = rig.direct().read("obj")
    assert sha(got) == sha(SMALL)
    record("open_wb", SMALL, got)


def _list(rig: Rig, client: StorageClient, tmp: Path) -> None:
    direct = rig.direct()
    for i in range(7):
        direct.write(f"dir/{i:02d}", b"x" * i)
    listed = [(m.key, m.content_length) for m in client.list("dir/")]
    assert listed == [(f"dir/{i:02d}", i) for i in range(7)]
    TALLY.survive("list", b"", b"")


def _copy(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("src", SMALL)
    client.copy("src", "dst")
    got = rig.direct().read("dst")
    assert sha(got) == sha(SMALL)
    record("copy", SMALL, got)


def _delete(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("obj", SMALL)
    client.delete("obj")
    assert not rig.direct().is_file("obj")
    TALLY.survive("delete", b"", b"")


def _info(rig: Rig, client: StorageClient, tmp: Path) -> None:
    rig.direct().write("obj", SMALL)
    assert client.info("obj").content_length == len(SMALL)
    TALLY.survive("info", b"", b"")


OPS = [
    Op("read", "GET", None, _read_whole),
    Op("read_range", "GET", None, _read_range),
    Op("open_stream", "GET", None, _read_stream),
    Op("write", "PUT", None, _write, writes=True),
    Op("upload_multipart", "PUT", "partNumber=", _upload_multipart, writes=True),
    Op("open_wb", "PUT", None, _open_wb, writes=True),
    Op("list", "GET", "list-type", _list),
    Op("copy", "PUT", None, _copy, writes=True),
    Op("delete", "POST", "delete", _delete),  # obstore deletes with a bulk POST ?delete,
    Op("info", "HEAD", None, _info),
]
OPS_BY_NAME = {op.name: op for op in OPS}

#: (label, FaultProxy.inject keyword arguments)
KINDS: dict[str, dict[str, Any]] = {
    "500": {"kind": "status", "status": 500},
    "502": {"kind": "status", "status": 502},
    "503-slowdown": {"kind": "status", "status": 503, "code": "SlowDown"},
    "504": {"kind": "status", "status": 504},
    "429": {"kind": "status", "status": 429},
    "drop": {"kind": "drop"},
    "reset-mid-body": {"kind": "reset", "keep": 0.4},
    "truncate": {"kind": "truncate", "keep": 0.7},
    "latency": {"kind": "latency", "delay": 0.05},
}


def _inject(rig: Rig, op: Op, kind: str, count: int) -> None:
    rig.proxy.inject(count=count, method=op.method, path=op.path, **KINDS[kind])


def _survive_params() -> list[Any]:
    params = []
    for op in OPS:
        for kind in KINDS:
            params.append(pytest.param(op, kind, id=f"{op.name}-{kind}"))
    return params


@pytest.mark.parametrize(("op", "kind"), _survive_params())
def test_operation_survives_faults(rclone: Rig, tmp_path: Path, op: Op, kind: str) -> None:
    """ATTEMPTS - 1 faults in a row: the operation succeeds with exact results."""
    client = rclone.client()
    faults = ATTEMPTS - 1 if kind != "latency" else 1  # a slow answer is still an answer
    _inject(rclone, op, kind, faults)
    started = time.monotonic()
    op.run(rclone, client, tmp_path)  # setup goes through the direct client: faults hit the operation only
    if op.name == "delete" and kind in ("reset-mid-body", "truncate"):
        # The server deleted the object but its answer was lost: the retry finds it gone and
        # counts that as success, so the remaining queued DELETE faults are never reached.
        assert sum(rclone.proxy.injected.values()) >= 1
        rclone.proxy.clear()
        return
    assert rclone.proxy.pending() == 0, "not every queued fault was hit"
    assert sum(rclone.proxy.injected.values()) == faults
    assert time.monotonic() - started < 30


EXHAUST_KINDS = ["500", "503-slowdown", "429", "drop"]


@pytest.mark.parametrize("kind", EXHAUST_KINDS)
@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_operation_raises_when_faults_outlast_retries(rclone: Rig, tmp_path: Path, op: Op, kind: str) -> None:
    """More faults than attempts: a RetryableError, and storage is exactly as before."""
    client = rclone.client(attempts=3)
    direct = rclone.direct()
    setup = {"read", "read_range", "open_stream", "copy", "delete", "info"}
    if op.name in setup:
        direct.write("src" if op.name == "copy" else "obj", SMALL)
    if op.name == "list":
        direct.write("dir/00", b"")
    before = {m.key: sha(direct.read(m.key)) for m in direct.list("")}
    _inject(rclone, op, kind, 50)
    with pytest.raises(RetryableError):
        if op.name == "list":
            list(client.list("dir/"))
        elif op.name == "delete":
            client.delete("obj")
        elif op.name == "copy":
            client.copy("src", "dst")
        elif op.name == "info":
            client.info("obj")
        elif op.name == "read":
            client.read("obj")
        elif op.name == "read_range":
            client.read("obj", Range(10, 1000))
        elif op.name == "open_stream":
            with client.open("obj", "rb", memory_load_limit=0) as fh:
                fh.read()
        else:
            OPS_BY_NAME[op.name].run(rclone, client, tmp_path)
    TALLY.raise_clean(op.name)
    rclone.proxy.clear()
    after = {m.key: sha(direct.read(m.key)) for m in direct.list("")}
    assert after == before, "a failed operation changed storage"
    assert 3 <= sum(rclone.proxy.injected.values()) <= 3 * 3  # bounded: attempts (x parts in flight)


# ---------------------------------------------------------------------------- streamed reads


@pytest.mark.parametrize("kind", ["reset-mid-body", "truncate", "drop", "503-slowdown"])
def test_streamed_read_faults_on_every_block(rclone: Rig, kind: str) -> None:
    """Six faults spread over a streamed read (with read-ahead and seeks): exact bytes."""
    data = payload(10 * BLOCK + 17, 3)
    rclone.direct().write("big", data)
    client = rclone.client(attempts=8)
    _inject(rclone, OPS_BY_NAME["open_stream"], kind, 6)
    with client.open("big", "rb", memory_load_limit=0) as fh:
        first = fh.read(3 * BLOCK + 5)
        fh.seek(7 * BLOCK - 3)
        tail = fh.read()
        fh.seek(3 * BLOCK + 5)
        middle = fh.read(4 * BLOCK - 8)
    got = first + middle + tail
    assert sha(got) == sha(data)
    record("open_stream", data, got)


@pytest.mark.parametrize("kind", ["reset-mid-body", "truncate"])
def test_large_whole_read_with_parallel_ranges(rclone: Rig, kind: str) -> None:
    """A whole read above multipart_chunksize (first chunk + parallel ranges) under body faults."""
    client = rclone.client(multipart_chunksize=1 * MiB)
    data = payload(3 * MiB + 11, 4)
    rclone.direct().write("big", data)
    _inject(rclone, OPS_BY_NAME["read"], kind, 3)
    got = client.read("big")
    assert sha(got) == sha(data)
    record("read", data, got)


def test_download_file_under_faults(rclone: Rig, tmp_path: Path) -> None:
    data = payload(2 * MiB, 5)
    rclone.direct().write("dl", data)
    client = rclone.client()
    rclone.proxy.inject("reset", 1, method="GET", keep=0.3)
    rclone.proxy.inject("truncate", 1, method="GET", keep=0.9)
    target = tmp_path / "out.bin"
    client.download_file("dl", str(target))
    got = target.read_bytes()
    assert sha(got) == sha(data)
    record("download_file", data, got)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ---------------------------------------------------------------------------- stalls / timeouts


def test_stalled_read_times_out_and_is_retried(rclone: Rig) -> None:
    client = rclone.client(read_timeout=1)
    rclone.direct().write("obj", SMALL)
    rclone.proxy.stall_next(1, 20.0, method="GET")
    started = time.monotonic()
    got = client.read("obj")
    elapsed = time.monotonic() - started
    assert sha(got) == sha(SMALL)
    record("read", SMALL, got)
    assert 0.9 <= elapsed < 30, elapsed  # the 1 s read timeout fired (bound: no hang)


def test_stalled_ranged_read_times_out_and_is_retried(rclone: Rig) -> None:
    client = rclone.client(read_timeout=1)
    rclone.direct().write("obj", SMALL)
    client.read("obj", Range(0, 10))  # let the provider learn how this server answers ranges
    rclone.proxy.stall_next(1, 20.0, method="GET")
    started = time.monotonic()
    got = client.read("obj", Range(1000, 5000))
    assert got == SMALL[1000:6000]
    record("read_range", SMALL[1000:6000], got)
    assert time.monotonic() - started < 30  # bounded: no hang


def test_stall_outlasting_retries_raises_in_bounded_time(rclone: Rig) -> None:
    client = rclone.client(attempts=2, read_timeout=1)
    rclone.direct().write("obj", SMALL)
    rclone.proxy.stall_next(5, 20.0, method="GET")
    started = time.monotonic()
    with pytest.raises(RetryableError):
        client.read("obj")
    elapsed = time.monotonic() - started
    TALLY.raise_clean("read")
    assert rclone.proxy.injected["stall"] == 2  # both attempts stalled and timed out
    assert elapsed < 30, elapsed  # a liveness bound (no hang), not a speed figure
    rclone.proxy.clear()


def test_stalled_write_times_out_and_lands_once(rclone: Rig) -> None:
    client = rclone.client(read_timeout=1)
    rclone.proxy.stall_next(1, 20.0, method="PUT")
    started = time.monotonic()
    client.write("obj", SMALL)
    assert time.monotonic() - started < 30  # bounded: no hang
    got = rclone.direct().read("obj")
    assert sha(got) == sha(SMALL)
    record("write", SMALL, got)


# ---------------------------------------------------------------------------- moto: multipart, If-Match


@pytest.mark.parametrize("kind", ["500", "503-slowdown", "drop", "reset-mid-body"])
def test_multipart_upload_survives_part_faults_without_leftovers(
    moto: Rig, tmp_path: Path, kind: str
) -> None:
    client = moto.client()
    _inject(moto, OPS_BY_NAME["upload_multipart"], kind, 2)
    _upload_multipart(moto, client, tmp_path)
    assert moto.proxy.pending() == 0
    assert moto.dangling_uploads() == []


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_multipart_upload_failure_leaves_nothing(moto: Rig, tmp_path: Path, kind: str) -> None:
    client = moto.client(attempts=2)
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    _inject(moto, OPS_BY_NAME["upload_multipart"], kind, 50)
    with pytest.raises(RetryableError):
        client.upload_file("obj", str(source))
    TALLY.raise_clean("upload_multipart")
    moto.proxy.clear()
    assert not moto.direct().is_file("obj")
    assert moto.dangling_uploads() == []


@pytest.mark.parametrize("where", ["create", "complete"])
def test_multipart_control_requests_faulted(moto: Rig, tmp_path: Path, where: str) -> None:
    """503 on CreateMultipartUpload / CompleteMultipartUpload: retried, exact object, no leftovers."""
    client = moto.client()
    path = "uploads" if where == "create" else "uploadId="
    moto.proxy.inject("status", 2, status=503, code="SlowDown", method="POST", path=path)
    _upload_multipart(moto, client, tmp_path)
    assert moto.proxy.pending() == 0
    assert moto.dangling_uploads() == []


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_streaming_multipart_write_survives_part_faults(moto: Rig, kind: str) -> None:
    """open('wb') above the part size: parts faulted and retried; exact object, no leftovers."""
    client = moto.client()
    _inject(moto, OPS_BY_NAME["upload_multipart"], kind, 2)
    with client.open("obj", "wb") as fh:
        for start in range(0, len(BIG), 1 * MiB):
            fh.write(BIG[start : start + MiB])
    got = moto.direct().read("obj")
    assert sha(got) == sha(BIG)
    record("open_wb", BIG, got)
    assert moto.dangling_uploads() == []


def test_streaming_multipart_write_failure_leaves_nothing(moto: Rig) -> None:
    client = moto.client(attempts=2)
    _inject(moto, OPS_BY_NAME["upload_multipart"], "500", 50)
    with pytest.raises(ManystoreError), client.open("obj", "wb") as fh:
        for start in range(0, len(BIG), 1 * MiB):
            fh.write(BIG[start : start + MiB])
    TALLY.raise_clean("open_wb")
    moto.proxy.clear()
    assert not moto.direct().is_file("obj")
    assert moto.dangling_uploads() == []


def test_object_replaced_during_streamed_read_raises(moto: Rig) -> None:
    """moto enforces If-Match on GET: a replaced object raises instead of mixing versions."""
    old, new = payload(6 * BLOCK, 6), payload(6 * BLOCK, 7)
    moto.direct().write("obj", old)
    client = moto.client()
    with client.open("obj", "rb", memory_load_limit=0) as fh:
        first = fh.read(BLOCK)
        assert first == old[:BLOCK]
        moto.direct().write("obj", new)
        with pytest.raises(PreconditionFailedError):
            fh.read()
    TALLY.raise_clean("open_stream")


def test_object_replaced_during_faulted_streamed_read_raises(moto: Rig) -> None:
    """Same, with a reset on the block after the replacement: the retry still sees the new ETag."""
    old, new = payload(6 * BLOCK, 8), payload(6 * BLOCK, 9)
    moto.direct().write("obj", old)
    client = moto.client()
    with client.open("obj", "rb", memory_load_limit=0) as fh:
        assert fh.read(BLOCK) == old[:BLOCK]
        moto.direct().write("obj", new)
        moto.proxy.reset_next(1)
        with pytest.raises(PreconditionFailedError):
            fh.read()
    TALLY.raise_clean("open_stream")


@pytest.mark.parametrize("kind", ["500", "drop", "reset-mid-body", "truncate"])
def test_moto_reads_survive_faults(moto: Rig, kind: str) -> None:
    """moto answers ranges with 206 (obstore's own path): streamed reads stay exact under faults."""
    data = payload(5 * BLOCK + 3, 10)
    moto.direct().write("obj", data)
    client = moto.client()
    _inject(moto, OPS_BY_NAME["open_stream"], kind, 3)
    with client.open("obj", "rb", memory_load_limit=0) as fh:
        got = fh.read()
    assert sha(got) == sha(data)
    record("open_stream", data, got)
