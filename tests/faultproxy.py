"""A tiny fault-injecting HTTP reverse proxy for retry tests.

:class:`FaultProxy` listens on 127.0.0.1 and forwards every request unchanged
(including the ``Host`` header, so SigV4 signatures made for the proxy's address
stay valid) to an upstream server. Before forwarding, it can answer the next N
requests itself with a chosen status (e.g. ``503 SlowDown``) or drop the
connection without answering.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Fault", "FaultProxy"]

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

_S3_CODES = {
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
    """One injected answer. ``status=None`` drops the connection without answering."""

    status: int | None
    code: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class FaultProxy:
    """Reverse proxy in front of ``upstream`` that injects queued faults first.

    Attributes:
        url: ``http://127.0.0.1:PORT`` of the proxy.
        requests_seen: Number of requests received (faulted or forwarded).
    """

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream_host = parsed.hostname or "127.0.0.1"
        self._upstream_port = parsed.port or 80
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests_seen = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self._read_body()
                fault = proxy._next_fault()
                if fault is None:
                    self._forward(body)
                elif fault.status is None:
                    self.close_connection = True
                    self.connection.shutdown(2)
                else:
                    self._answer(fault)

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
                code = fault.code or _S3_CODES.get(fault.status, "Error")
                payload = b""
                if self.command != "HEAD" and fault.status not in (204, 304):
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>injected by FaultProxy</Message></Error>"
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

            def _forward(self, body: bytes) -> None:
                conn = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="FaultProxy", daemon=True)
        self._thread.start()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests_seen += 1
            return self._faults.popleft() if self._faults else None

    def fail_next(
        self, count: int, status: int | None, code: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (``None``: drop the connection)."""
        with self._lock:
            for _ in range(count):
                self._faults.append(Fault(status, code, dict(headers or {})))

    def clear(self) -> None:
        """Forget faults that were queued but not yet used."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        """Faults still queued."""
        with self._lock:
            return len(self._faults)

    def close(self) -> None:
        """Stop listening and wait for the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
