"""Hostile HTTP servers in a thread: each path misbehaves in one way a degraded service can.

/trickle    headers, then one body byte every 0.1 s for a minute (httpx's read timeout
            never trips: each read gets its byte in time)
/silent     headers, then nothing
/half       headers announcing 1000 bytes, 10 bytes, then the connection closes
/garbage    no HTTP at all: bytes that are no status line
/flood      a fast, endless chunked body (a client must stop at its body limit)

/, /collections and /collections/<path name>/... answer Qdrant's version, collections (one:
trickle), count, create-snapshot (a 1000-byte snapshot announced), list-snapshots (none) and
delete-snapshot calls as Qdrant does; the snapshot's download then misbehaves as <path name>.
DELETED lists the snapshots deleted, as "<collection>/<name>".
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATHS = ("/trickle", "/silent", "/slowheaders", "/half", "/garbage", "/flood")
SEEN: list[str] = []  # the paths asked for, in order (a test waits until its client is inside)
DELETED: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if self.path in ("/", "/collections"):
            self._qdrant("", self.path)
            return
        if parts[0] == "collections" and parts[-1] == "snapshots":
            self._qdrant(parts[1], "list")
            return
        with contextlib.suppress(OSError):
            self._misbehave()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "collections" and parts[-1] in ("count", "snapshots"):
            self._qdrant(parts[1], parts[-1])
            return
        with contextlib.suppress(OSError):
            self._misbehave()

    def do_DELETE(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        DELETED.append("/".join(parts[1::2]))  # collections/<c>/snapshots/<name>
        self._qdrant(parts[1], "delete")

    def _qdrant(self, collection: str, call: str) -> None:
        """A healthy Qdrant answer: its version, its one collection (``trickle``), the point
        count, or a snapshot's description."""
        answers: dict[str, object] = {
            "/collections": {"collections": [{"name": "trickle"}]},
            "count": {"count": 3},
            "list": [],
            "delete": True,
        }
        description = {
            "name": f"{collection}-1.snapshot", "creation_time": None, "size": 1000,
            "checksum": None,
        }  # fmt: skip
        result = answers.get(call, description)
        envelope = {"result": result, "status": "ok", "time": 0.001}
        if call == "/":  # the root answers without Qdrant's envelope
            envelope = {"title": "qdrant - vector search engine", "version": "1.20.0"}
        body = json.dumps(envelope).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _misbehave(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        # /trickle/metrics too; a snapshot download misbehaves as its collection's name says
        path = "/" + (parts[1] if parts[0] == "collections" and len(parts) > 1 else parts[0])
        SEEN.append(path)
        if path == "/slowheaders":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(600):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.1)
            return
        if path == "/garbage":
            self.wfile.write(b"\x00\xffnot http at all\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if path == "/flood":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 65536
            chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
            for _ in range(10_000):  # 640 MiB if nobody stops reading
                self.wfile.write(chunk)
            return
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        if path == "/trickle":
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/silent":
            time.sleep(30)
        elif path == "/half":
            self.wfile.write(b'{"data": [')
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def hostile_server() -> Iterator[str]:
    """The server's base URL while the block runs."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
