"""Stand-in for the box's reverse proxy (the stack's `proxy`), standard library only.

The proxy is the box's exposure: the one service published beyond loopback. It terminates TLS,
checks an API key and forwards the OpenAI API to the worker. What sbx's incident steps read from
it is its keys file and its access log, so this one file does exactly that:

    GET  /health   200 {"status": "ok"} without a key
    ANY  /v1/...   needs "Authorization: Bearer KEY" with a key from the keys file, else 401;
                   forwarded to $UPSTREAM (http://worker:8000), the answer passed back (502 when
                   the worker cannot be reached); with $UPSTREAM_API_KEY set, the forwarded
                   request carries "Authorization: Bearer $UPSTREAM_API_KEY" instead of the
                   client's key (a keyed vLLM behind the proxy, as nginx's proxy_set_header)
    anything else  404

Keys: $KEYS_FILE (/etc/proxy/keys.txt), "NAME KEY" a line, '#' comments and blank lines allowed,
read once at start (revoking a key therefore needs a restart, as with the real proxy).

TLS: $TLS_CERT / $TLS_KEY (/etc/proxy/tls/cert.pem, key.pem), on $PORT (443).

Access log: $ACCESS_LOG (/var/log/proxy/access.log), one line per request (also printed to
stdout), in $PROXY_LOG_FORMAT:
    combined (default)  ADDR - KEYFP [27/Nov/2026:03:15:00 +0000] "GET /v1/models HTTP/1.1" 200 123 "-" "UA"
    json                {"time": ..., "remote_addr": ..., "key_fp": ... | null, "method": ...,
                         "path": ..., "status": ..., "bytes": ..., "user_agent": ...}
Health probes (GET /health, from Docker's check or sbx) are not logged, like nginx's
`access_log off` on a health location.
A key only ever shows as its fingerprint, "sha256:" + the first 16 hex digits of sha256(key);
a request without a key logs "-" (null in JSON), a rejected key logs the fingerprint of what was
presented, so probing with a leaked key shows in the log.

Client address: the TCP peer, or the first address of X-Forwarded-For when the peer is trusted:
loopback, or the container's default gateway, which is the host itself (Docker's published ports
reach a container from the bridge gateway). A request from another container cannot fake it.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KEYS_FILE = Path(os.environ.get("KEYS_FILE", "/etc/proxy/keys.txt"))
TLS_CERT = os.environ.get("TLS_CERT", "/etc/proxy/tls/cert.pem")
TLS_KEY = os.environ.get("TLS_KEY", "/etc/proxy/tls/key.pem")
ACCESS_LOG = Path(os.environ.get("ACCESS_LOG", "/var/log/proxy/access.log"))
LOG_FORMAT = os.environ.get("PROXY_LOG_FORMAT", "combined").strip().lower() or "combined"
UPSTREAM = urlsplit(os.environ.get("UPSTREAM", "http://worker:8000"))
UPSTREAM_TIMEOUT = float(os.environ.get("UPSTREAM_TIMEOUT", "60"))
UPSTREAM_API_KEY = os.environ.get("UPSTREAM_API_KEY") or None
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
}


def key_fingerprint(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def read_keys(path: Path) -> dict[str, str]:
    """key -> name from a 'NAME KEY' file."""
    keys: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            sys.exit(f"{path}:{number}: expected 'NAME KEY', got {len(fields)} field(s)")
        keys[fields[1]] = fields[0]
    return keys


def default_gateway() -> str | None:
    """The container's default gateway (the host side of the Docker bridge), from /proc."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return None


KEYS: dict[str, str] = {}
TRUSTED: set[str] = set()
_log_lock = threading.Lock()


def trusted_peer(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback or addr in TRUSTED
    except ValueError:
        return False


JSON_FIELDS = ("time", "remote_addr", "key_fp", "method", "path", "status", "bytes", "user_agent")


def log_escape(text: str, words: bool = False) -> str:
    """nginx's escaping of logged strings: '"', '\\', control and non-ASCII bytes as \\xHH,
    so no client text can end a field or a line early; ``words``: spaces too (one word of the
    request line)."""
    out = []
    for byte in text.encode("utf-8", errors="surrogateescape"):
        char = chr(byte)
        plain = 0x20 < byte < 0x7F or (byte == 0x20 and not words)
        out.append(char if plain and char not in '"\\' else f"\\x{byte:02X}")
    return "".join(out)


def format_access(entry: dict[str, Any]) -> str:
    """One line whatever the client sent: JSON (json.dumps escapes) or combined, every string
    that came from the client escaped (log_escape)."""
    if LOG_FORMAT == "json":
        return json.dumps({k: entry[k] for k in JSON_FIELDS})
    stamp = datetime.fromisoformat(entry["time"]).strftime("%d/%b/%Y:%H:%M:%S %z")
    request = " ".join(log_escape(entry[k], words=True) for k in ("method", "path", "protocol"))
    return (
        f"{entry['remote_addr']} - {entry['key_fp'] or '-'} [{stamp}] "
        f'"{request}" {entry["status"]} {entry["bytes"]} '
        f'"{log_escape(entry["referer"] or "-")}" "{log_escape(entry["user_agent"] or "-")}"'
    )


def write_access(entry: dict[str, Any]) -> None:
    line = format_access(entry)
    with _log_lock:
        with ACCESS_LOG.open("a") as fh:
            fh.write(line + "\n")
        print(line, flush=True)


class Handler(BaseHTTPRequestHandler):
    server_version = "sbx-proxy-standin/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the access log is written by write_access, once per request

    def do_GET(self) -> None:
        self.handle_any()

    def do_POST(self) -> None:
        self.handle_any()

    def do_PUT(self) -> None:
        self.handle_any()

    def do_DELETE(self) -> None:
        self.handle_any()

    def do_HEAD(self) -> None:
        self.handle_any()

    def client_addr(self) -> str:
        peer = self.client_address[0]
        forwarded = self.headers.get("X-Forwarded-For")
        if forwarded and trusted_peer(peer):
            first = forwarded.split(",")[0].strip()
            try:  # an address, or not believed: the header is client text like any other
                return str(ipaddress.ip_address(first))
            except ValueError:
                return peer
        return peer

    def presented_key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = self.presented_key()
        path = self.path.split("?", 1)[0]
        if path == "/health":
            status, headers, payload = 200, {"Content-Type": "application/json"}, b'{"status": "ok"}'
        elif path == "/v1" or path.startswith("/v1/"):
            if key is None or key not in KEYS:
                status, headers = 401, {"Content-Type": "application/json"}
                payload = json.dumps({"error": "invalid or missing API key"}).encode()
            else:
                status, headers, payload = self.forward(body)
        else:
            status, headers = 404, {"Content-Type": "application/json"}
            payload = json.dumps({"error": f"no route {path}"}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if path == "/health":
            # health probes (Docker's every 5 s, sbx status's from the host) are noise in an
            # incident's evidence, and would make the log grow while sbx backs it up
            return
        write_access(
            {
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "remote_addr": self.client_addr(),
                "key_fp": key_fingerprint(key) if key else None,
                "method": self.command,
                "path": self.path,
                "protocol": self.request_version,
                "status": status,
                "bytes": len(payload) if self.command != "HEAD" else 0,
                "referer": self.headers.get("Referer"),
                "user_agent": self.headers.get("User-Agent"),
            }
        )

    def forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(
            UPSTREAM.hostname or "worker", UPSTREAM.port or 80, timeout=UPSTREAM_TIMEOUT
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = self.client_addr()
        if UPSTREAM_API_KEY:  # the client's key is the proxy's, never the worker's
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {UPSTREAM_API_KEY}"
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
        except OSError as exc:
            message = f"upstream {UPSTREAM.geturl()} unreachable: {exc}"
            return 502, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()
        finally:
            conn.close()
        kept = {
            k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"server", "date"}
        }
        return answer.status, kept, payload


class TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the handshake happens here, in the request's own thread: a client that connects and
        # never speaks TLS holds up only itself, not the accept loop
        request.settimeout(30)
        tls = self.context.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(tls, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        print(f"connection from {client_address[0]}: {exc!r}", flush=True)


def main() -> None:
    if LOG_FORMAT not in ("combined", "json"):
        sys.exit(f"PROXY_LOG_FORMAT must be combined or json, not {LOG_FORMAT!r}")
    KEYS.update(read_keys(KEYS_FILE))
    gateway = default_gateway()
    if gateway:
        TRUSTED.add(gateway)
    ACCESS_LOG.parent.mkdir(parents=True, exist_ok=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS_CERT, TLS_KEY)
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "443"))
    server = TlsServer((host, port), context)
    stop = threading.Event()
    # Docker sends SIGTERM to PID 1, which has no default handler there
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    print(
        f"proxy stand-in on https://{host}:{port} -> {UPSTREAM.geturl()}; {len(KEYS)} key(s) "
        f"from {KEYS_FILE}; log {ACCESS_LOG} ({LOG_FORMAT}); trusted for X-Forwarded-For: "
        f"loopback{', ' + gateway if gateway else ''}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
