"""The drill's read-only relay to a live GPU service; runs inside the scratch project.

sbx never imports this file: the drill copies it into the scratch stack and runs it with
``python3`` in the live service's own image (on the box already: nothing is pulled), attached
to the scratch project's networks under the GPU service's name and to the live project's
network. A restored consumer (Open WebUI's ``OPENAI_API_BASE_URL=http://worker:8000/v1``, the
proxy's upstream) thus reaches the live service by the name it always used, and only with GET
and HEAD: the drill never loads the live GPU with a completion nor changes anything there.
Anything else is answered 405 with an OpenAI-style error body.

Environment: ``SBX_RELAY_TARGET`` (the live container's name, unique on the daemon, so no
scratch name can resolve to it by accident), ``SBX_RELAY_PORTS`` (comma-separated container
ports, each listened on and forwarded to the same port), ``SBX_RELAY_SERVICE`` (for messages).
``--check``: one GET /health through the relay's first port, for the container's healthcheck
(any HTTP answer below 500 shows that the live service is reached).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READ_ONLY = ("GET", "HEAD")
# not passed on: they describe one hop, and the relay sets its own Content-Length
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
TIMEOUT_S = 120.0
TARGET = os.environ.get("SBX_RELAY_TARGET", "")
SERVICE = os.environ.get("SBX_RELAY_SERVICE", "the GPU service")


class RelayServer(ThreadingHTTPServer):
    daemon_threads = True
    port = 0


class Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._relay()

    def do_HEAD(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._refuse()

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")
        sys.stdout.flush()

    def _relay(self) -> None:
        self._drain()
        server = self.server
        port = server.port if isinstance(server, RelayServer) else 0
        upstream = http.client.HTTPConnection(TARGET, port, timeout=TIMEOUT_S)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream.request(self.command, self.path, headers=headers)
            answer = upstream.getresponse()
            body = answer.read()
        except OSError as exc:
            self._json(502, f"sbx drill relay: the live {SERVICE} ({TARGET}:{port}): {exc}")
            return
        finally:
            upstream.close()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        # a HEAD answer has no body: its length is the one the upstream announced
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._drain()
        self._json(
            405,
            f"sbx drill: the restored stack reaches the live {SERVICE} read-only "
            f"({' and '.join(READ_ONLY)} only); {self.command} was not passed on",
        )

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def _json(self, code: int, message: str) -> None:
        body = json.dumps({"object": "error", "message": message, "code": code}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def check(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        status = conn.getresponse().status
    except OSError as exc:
        print(f"relay check: {exc}")
        return 1
    finally:
        conn.close()
    return 0 if status < 500 else 1


def main(argv: list[str]) -> int:
    ports = [int(p) for p in os.environ.get("SBX_RELAY_PORTS", "").split(",") if p.strip()]
    if not TARGET or not ports:
        print("sbx drill relay: SBX_RELAY_TARGET and SBX_RELAY_PORTS are needed")
        return 2
    if "--check" in argv:
        return check(ports[0])
    # PID 1 in its container: without a handler SIGTERM is ignored and `down` waits its timeout
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threads = []
    for port in ports:
        server = RelayServer(("0.0.0.0", port), Relay)  # noqa: S104 (the scratch network)
        server.port = port
        threads.append(threading.Thread(target=server.serve_forever, daemon=True))
    for thread in threads:
        thread.start()
    print(f"sbx drill relay: :{ports} -> {TARGET} (live {SERVICE}), GET and HEAD only", flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
