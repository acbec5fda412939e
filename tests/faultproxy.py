"""A tiny fault-injecting HTTP reverse proxy for retry and reliability tests.

:class:`FaultProxy` listens on 127.0.0.1 and forwards every request unchanged
(including the ``Host`` header, so SigV4 signatures made for the proxy's address
stay valid) to an upstream server: an S3 server (rclone, moto) or any other plain
HTTP store (Azurite, a GCS emulator). Before forwarding, it can take over the next
matching requests with a queued :class:`Fault`:

* ``status``   — answer with an error status (``503 SlowDown``, ``429``, ``500``...);
* ``drop``     — close the connection without answering;
* ``reset``    — forward, send the headers and part of the body, then reset the
  connection (TCP RST);
* ``truncate`` — forward, send the headers with the original ``Content-Length``
  but only part of the body, then close the connection cleanly (FIN);
* ``corrupt``  — forward, but flip the last byte of the body (same length);
* ``latency``  — wait ``delay`` seconds, then forward normally;
* ``stall``    — accept the request and never answer (until ``delay`` seconds pass or
  the proxy closes), so the client's read timeout fires;
* ``error-200`` — answer ``200 OK`` whose body is an S3 XML error
  (``<Error><Code>InternalError</Code>...``, code from ``code``), as S3 does for a
  CopyObject or CompleteMultipartUpload that fails after the headers were sent.

With ``forward=True`` an ``error-200`` or ``stall`` fault first forwards the request
upstream (the server does the work) and discards the answer: a lost acknowledgement.

A fault may be restricted to one HTTP method, requests whose path (with the
query string) contains a substring and/or requests carrying a header (``header``:
present; ``header_value``: its value contains that substring, e.g.
``header="x-amz-copy-source"`` for CopyObject); requests that match no queued fault are
forwarded. Counters: ``requests_seen``, ``requests_by_method`` and ``injected``
(faults injected, by kind; ``injected_total`` sums them).
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultProxy"]

FaultKind = Literal["status", "drop", "reset", "truncate", "latency", "stall", "error-200", "corrupt"]
FAULT_KINDS: tuple[str, ...] = (
    "status", "drop", "reset", "truncate", "latency", "stall", "error-200", "corrupt",
)  # fmt: skip

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

#: Response bodies are sent (and counted) in slices of this many bytes.
_SLICE = 256 * 1024

_S3_CODES = {
    400: "BadRequest",
    408: "RequestTimeout",
    429: "SlowDown",
    500: "InternalError",
    502: "BadGateway",
    503: "SlowDown",
    504: "GatewayTimeout",
    403: "AccessDenied",
    404: "NoSuchKey",
    412: "PreconditionFailed",
}


@dataclass
class Fault:
    """One injected misbehaviour.

    Attributes:
        status: Status to answer with (kind ``status``). For backward compatibility a
            ``Fault(None)`` is a ``drop`` and ``Fault(503)`` a ``status`` fault.
        code: S3 error code in the XML body (default: derived from ``status``; ``InternalError``
            for ``error-200``).
        headers: Extra response headers (kind ``status``).
        kind: What to do; see the module docs.
        method: Only requests with this HTTP method (e.g. ``"GET"``) match; ``None``: any.
        path: Only requests whose path-with-query contains this substring match; ``None``: any.
        delay: Seconds of added latency (``latency``) or the longest stall (``stall``).
        keep: Fraction of the body sent before a ``reset``/``truncate`` (0 <= keep < 1).
        header: Only requests carrying this header (case-insensitive) match; ``None``: any.
        header_value: With ``header``: only when its value contains this substring.
        forward: ``error-200`` and ``stall`` only: forward the request upstream first, then answer
            the error / stall (the server did the work but the client never learns it).
    """

    status: int | None = None
    code: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""
    method: str | None = None
    path: str | None = None
    delay: float = 0.0
    keep: float = 0.5
    header: str | None = None
    header_value: str | None = None
    forward: bool = False

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = "drop" if self.status is None else "status"
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: expected one of {list(FAULT_KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a 'status' fault needs a status")
        if self.kind == "error-200" and self.status is None:
            self.status = 200
        if not 0 <= self.keep < 1:
            raise ValueError(f"keep must be in [0, 1), got {self.keep}")

    @property
    def label(self) -> str:
        """Counter key: ``"status_503"``, ``"drop"``, ``"reset"``..."""
        return f"status_{self.status}" if self.kind == "status" else self.kind

    def matches(self, method: str, path: str, headers: Any = None) -> bool:
        if self.header is not None:
            value = None if headers is None else headers.get(self.header)
            if value is None or (self.header_value is not None and self.header_value not in value):
                return False
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or self.path in path
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections the proxy (or the client) cut on purpose are not errors


class FaultProxy:
    """Reverse proxy in front of ``upstream`` that injects queued faults first.

    Attributes:
        url: ``http://127.0.0.1:PORT`` of the proxy.
        requests_seen: Number of requests received (faulted or forwarded).
        requests_by_method: Requests received, by HTTP method.
        requests_log: ``(method, path-with-query)`` of every request received, in order.
        injected: Faults injected so far, by :attr:`Fault.label`.
        body_bytes_by_method: Response body bytes forwarded to the client, by HTTP method (bytes
            sent before a client dropped the connection included).
    """

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream_host = parsed.hostname or "127.0.0.1"
        self._upstream_port = parsed.port or 80
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests_seen = 0
        self.requests_by_method: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.requests_log: list[tuple[str, str]] = []
        self.body_bytes_by_method: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self._read_body()
                fault = proxy._next_fault(self.command, self.path, self.headers)
                if fault is None:
                    self._forward(body)
                elif fault.kind == "drop":
                    self._drop()
                elif fault.kind == "status":
                    self._answer(fault)
                elif fault.kind == "error-200":
                    if fault.forward:
                        self._forward(body, discard=True)
                    self._answer(fault)
                elif fault.kind == "latency":
                    proxy._closing.wait(fault.delay)
                    self._forward(body)
                elif fault.kind == "stall":
                    if fault.forward:  # the server does the work; its answer never comes back
                        self._forward(body, discard=True)
                    proxy._closing.wait(fault.delay or 60.0)
                    self._drop()
                elif fault.kind == "corrupt":
                    self._forward(body, corrupt=True)
                else:  # reset / truncate
                    self._forward(body, cut=fault)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, fault: Fault) -> None:
                assert fault.status is not None
                default = (
                    "InternalError" if fault.kind == "error-200" else _S3_CODES.get(fault.status, "Error")
                )
                code = fault.code or default
                payload = b""
                if self.command != "HEAD" and fault.status not in (204, 304):
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>injected by FaultProxy</Message>"
                        f"<RequestId>faultproxy</RequestId></Error>"
                    ).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                if fault.status not in (204, 304):
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            def _forward(
                self, body: bytes, cut: Fault | None = None, discard: bool = False, corrupt: bool = False
            ) -> None:
                conn = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if discard:
                    return
                if corrupt and data:  # same length, one flipped byte: only a checksum can tell
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                if cut is not None and (self.command == "HEAD" or not data):
                    self._cut(cut)  # nothing to cut short: the answer is lost altogether
                    return
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if cut is None:
                    # In slices, each counted once sent: a client that drops the connection
                    # mid-body (an abandoned GET) is charged the bytes it was sent.
                    view = memoryview(data)
                    for start in range(0, len(view), _SLICE):
                        self.wfile.write(view[start : start + _SLICE])
                        with proxy._lock:
                            proxy.body_bytes_by_method[self.command] += min(_SLICE, len(view) - start)
                    return
                self.wfile.write(data[: int(len(data) * cut.keep)])
                self._cut(cut)

            def _cut(self, cut: Fault) -> None:
                self.close_connection = True
                if cut.kind == "reset":  # RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    self._drop()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FaultProxy", daemon=True
        )
        self._thread.start()

    def _next_fault(self, method: str, path: str, headers: Any = None) -> Fault | None:
        with self._lock:
            self.requests_seen += 1
            self.requests_by_method[method] += 1
            self.requests_log.append((method, path))
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path, headers):
                    del self._faults[index]
                    self.injected[fault.label] += 1
                    return fault
            return None

    # ------------------------------------------------------------------ queueing
    def inject(
        self,
        kind: str,
        count: int = 1,
        *,
        status: int | None = None,
        code: str = "",
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        delay: float = 0.0,
        keep: float = 0.5,
        header: str | None = None,
        header_value: str | None = None,
        forward: bool = False,
    ) -> None:
        """Queue ``count`` faults of ``kind`` for the next matching requests (see :class:`Fault`)."""
        faults = [
            Fault(
                status,
                code,
                dict(headers or {}),
                kind,
                method,
                path,
                delay,
                keep,
                header,
                header_value,
                forward,
            )
            for _ in range(count)
        ]
        with self._lock:
            self._faults.extend(faults)

    def fail_next(
        self,
        count: int,
        status: int | None,
        code: str = "",
        headers: dict[str, str] | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (``None``: drop the connection)."""
        self.inject(
            "drop" if status is None else "status",
            count,
            status=status,
            code=code,
            headers=headers,
            method=method,
            path=path,
        )

    def reset_next(
        self, count: int = 1, keep: float = 0.5, *, method: str | None = "GET", path: str | None = None
    ) -> None:
        """Reset the next ``count`` matching connections after ``keep`` of the response body."""
        self.inject("reset", count, keep=keep, method=method, path=path)

    def truncate_next(
        self, count: int = 1, keep: float = 0.5, *, method: str | None = "GET", path: str | None = None
    ) -> None:
        """Send only ``keep`` of the next ``count`` matching bodies (with the full Content-Length)."""
        self.inject("truncate", count, keep=keep, method=method, path=path)

    def error200_next(
        self,
        count: int = 1,
        code: str = "InternalError",
        *,
        method: str | None = None,
        path: str | None = None,
        header: str | None = None,
        forward: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests ``200 OK`` with an S3 ``<Error>`` body."""
        self.inject("error-200", count, code=code, method=method, path=path, header=header, forward=forward)

    def delay_next(
        self, count: int, seconds: float, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Forward the next ``count`` matching requests after ``seconds`` of added latency."""
        self.inject("latency", count, delay=seconds, method=method, path=path)

    def stall_next(
        self, count: int = 1, seconds: float = 30.0, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Never answer the next ``count`` matching requests (for up to ``seconds``)."""
        self.inject("stall", count, delay=seconds, method=method, path=path)

    # ------------------------------------------------------------------ state
    @property
    def injected_total(self) -> int:
        """Faults injected so far (all kinds)."""
        with self._lock:
            return sum(self.injected.values())

    def clear(self) -> None:
        """Forget faults that were queued but not yet used."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        """Faults still queued."""
        with self._lock:
            return len(self._faults)

    def close(self) -> None:
        """Stop listening (ending any stall) and wait for the serving thread."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass (for background requests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
