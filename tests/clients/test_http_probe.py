"""HTTP probe against a real HTTP server in a thread: success, HTTP errors, timeouts, refusals."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sbx.errors import HttpError
from tasks.clients.http_probe import HttpProbe


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        status = {"/ok": 200, "/json": 200, "/broken": 503, "/slow": 200}.get(self.path, 404)
        body = b'{"ready": true}' if self.path == "/json" else b"<html>not json</html>"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the probe gave up on /slow, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_probe_outcomes(server: str) -> None:
    with HttpProbe(timeout_s=0.5) as probe:
        ok = probe.get(f"{server}/ok")
        assert ok.ok and ok.status_code == 200 and ok.error is None
        broken = probe.get(f"{server}/broken")
        assert not broken.ok and broken.status_code == 503 and broken.summary == "HTTP 503"
        slow = probe.get(f"{server}/slow")
        assert not slow.ok and slow.status_code is None
        assert "no answer within 0.5 s" in slow.summary
        assert slow.elapsed_ms < 1900  # the timeout cut it short, not the server's 2 s
        refused = probe.get(f"http://127.0.0.1:{free_port()}/health")
        assert not refused.ok and refused.error == "connection refused"


def test_get_json_raises_clear_errors(server: str) -> None:
    with HttpProbe(timeout_s=1) as probe:
        assert probe.get_json(f"{server}/json") == {"ready": True}
        with pytest.raises(HttpError, match="answered HTTP 503") as caught:
            probe.get_json(f"{server}/broken")
        assert caught.value.retryable
        with pytest.raises(HttpError, match="did not answer JSON") as caught:
            probe.get_json(f"{server}/ok")
        assert not caught.value.retryable
        with pytest.raises(HttpError, match="could not be reached"):
            probe.get_json(f"http://127.0.0.1:{free_port()}/")
