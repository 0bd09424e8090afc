"""A fault-injecting HTTP reverse proxy in a thread, between an S3 client and moto's server.

Point ``endpoint_url`` at :attr:`FaultProxy.url`. For a fraction (``fault_rate``) of the requests
it answers with a fault instead of (or after) forwarding:

    drop       reads the request, then resets the connection: the server never sees it
    slowdown   reads the request, answers 503 SlowDown with S3's XML error body
    truncate   forwards the request, then sends the answer's headers and half its body and
               closes the connection (an answer without a body is lost whole: the server did
               the work, the client never hears of it)
    corrupt    forwards, then flips one byte of the answer's body (same length); not in the
               default mix, for checksum tests

Which requests fail is deterministic for a seed and independent of thread scheduling: the
decision for the n-th request of one (method, path, query) is a hash of (seed, request, n), and
no request fails more than ``max_faults_in_a_row`` times in a row, so a client with retries
always gets through. Every request is recorded (method, path, query, fault, status) so tests
can count, e.g., the PUTs of one key.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlsplit

FAULTS = ("drop", "slowdown", "truncate")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
}
_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId>"
    b"</Error>"
)


@dataclass(frozen=True)
class Request:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str  # unquoted, without the query: /bucket/key
    query: str
    fault: str | None  # None: forwarded and answered as the server did
    status: int | None  # the server's status when forwarded, else None (503 for slowdown)

    @property
    def reached_server(self) -> bool:
        return self.fault in (None, "truncate", "corrupt")


class FaultProxy:
    """See the module docstring. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        upstream: str,
        *,
        fault_rate: float = 0.2,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 0,
        max_faults_in_a_row: int = 3,
    ) -> None:
        parts = urlsplit(upstream)
        assert parts.scheme == "http" and parts.hostname and parts.port, upstream
        self.upstream = (parts.hostname, parts.port)
        self.fault_rate = fault_rate
        self.faults = faults
        self.seed = seed
        self.max_faults_in_a_row = max_faults_in_a_row
        #: when set, every request is answered with this (status, S3 error code), not forwarded
        self.forced_error: tuple[int, str] | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._streak: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        fault: str | bool | None = True,
        reached_server: bool | None = None,
    ) -> int:
        """Requests matching ``method`` and ``path`` (exact); ``fault=True``: any outcome."""
        with self._lock:
            records = list(self.requests)
        return sum(
            1
            for r in records
            if (method is None or r.method == method)
            and (path is None or r.path == path)
            and (fault is True or r.fault == fault)
            and (reached_server is None or r.reached_server == reached_server)
        )

    def faults_injected(self) -> Counter[str]:
        with self._lock:
            return Counter(r.fault for r in self.requests if r.fault)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def decide(self, method: str, path: str, query: str) -> str | None:
        """The fault for this request (None: forward it); deterministic, see the docstring."""
        # the upload id of a multipart upload is random: leave it out of the request's identity
        stable = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(query)) if k != "uploadId")
        ident = f"{method} {path}?{stable}"
        with self._lock:
            attempt = self._seen[ident]
            self._seen[ident] += 1
            digest = hashlib.sha256(f"{self.seed}|{ident}|{attempt}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2**64
            if draw >= self.fault_rate or self._streak[ident] >= self.max_faults_in_a_row:
                self._streak[ident] = 0
                return None
            self._streak[ident] += 1
            return self.faults[digest[8] % len(self.faults)]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _ClientGone(Exception):
    """The client closed its connection before sending the whole request body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for Expect headers
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests count through FaultProxy.requests

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined,no-any-return]

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parts.query
        try:
            body = self._read_body()
        except (_ClientGone, ConnectionError):
            self.close_connection = True
            return
        if self.proxy.forced_error is not None:
            status, code = self.proxy.forced_error
            self.proxy.record(Request(self.command, path, query, code, status))
            self._send(status, [("Content-Type", "application/xml")], _error_xml(code))
            return
        fault = self.proxy.decide(self.command, path, query)
        if fault == "drop":
            self.proxy.record(Request(self.command, path, query, fault, None))
            self._reset()
            return
        if fault == "slowdown":
            self.proxy.record(Request(self.command, path, query, fault, 503))
            self._send(503, [("Content-Type", "application/xml")], _SLOWDOWN)
            return
        status, headers, answer = self._forward(body)
        self.proxy.record(Request(self.command, path, query, fault, status))
        if fault == "truncate":
            if not answer or self.command == "HEAD":
                self._reset()  # the work is done, the answer is lost
                return
            self._send(status, headers, answer, cut=len(answer) // 2)
            self.close_connection = True  # a plain close after half the body: a short read
            return
        if fault == "corrupt" and answer:
            flipped = bytearray(answer)
            flipped[len(flipped) // 2] ^= 0xFF
            answer = bytes(flipped)
        self._send(status, headers, answer)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # the client went away mid-body (e.g. SIGKILL): a real server gets a short body and
            # stores nothing, so never forward it (moto would store the torn body as complete)
            raise _ClientGone
        return body

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                answer = response.read()
            except (ConnectionError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
                continue
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, answer
        raise AssertionError("unreachable")

    def _send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, cut: int | None = None
    ) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() != "content-length" or self.command == "HEAD":
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()

    def _reset(self) -> None:
        """Close the client's connection with a TCP reset (SO_LINGER 0), as a dropped link."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()


def _error_xml(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{code} (fault proxy)</Message><RequestId>fault-proxy</RequestId></Error>"
    ).encode()
