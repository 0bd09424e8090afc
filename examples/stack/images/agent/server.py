"""Stand-in for an internet-facing agent (the stack's `internet-research`), standard library only.

What sbx's incident steps read from an agent is its allowlist and its fetch log, so this file
fetches URLs on request, checks them against the allowlist, and logs every attempt:

    GET  /health  200 {"status": "ok"}
    POST /fetch   {"url": U} fetches U when its host is on the allowlist, else 403;
                  {"url": U, "ignore_allowlist": true} fetches anyway (a compromised agent).
                  Answer: {"url", "host", "allowed", "fetched", "status", "body"}; 400 for a body
                  that is not JSON with a "url", or a URL that is not http(s).

Allowlist: $ALLOWLIST (/agent/allowlist.txt), one domain a line, '#' comments; a domain also
allows its subdomains (a leading "*." is accepted and means the same). Re-read on every request,
so tightening it takes effect without a restart.

Fetching never leaves the container: every URL, whatever its host, is requested from a small page
server on 127.0.0.1:$PAGE_PORT (9000) inside it, with the URL's host as the Host header. It answers
any path with a small HTML page naming the host (and 201 for POST, so "/upload" looks like one).

Fetch log: $FETCH_LOG (/var/log/agent/$AGENT_NAME.jsonl), one JSON line per attempt:
    {"time": ISO, "agent": NAME, "url": U, "host": H, "allowed": bool, "fetched": bool,
     "status": int | null}
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

AGENT = os.environ.get("AGENT_NAME", "internet-research")
ALLOWLIST = Path(os.environ.get("ALLOWLIST", "/agent/allowlist.txt"))
FETCH_LOG = Path(os.environ.get("FETCH_LOG", f"/var/log/agent/{AGENT}.jsonl"))
PAGE_PORT = int(os.environ.get("PAGE_PORT", "9000"))
_log_lock = threading.Lock()


def read_allowlist(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []  # no allowlist: nothing is allowed
    domains = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().lower()
        if line:
            domains.append(line.removeprefix("*.").rstrip("."))
    return domains


def host_allowed(host: str, domains: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def log_attempt(url: str, host: str, allowed: bool, fetched: bool, status: int | None) -> None:
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "agent": AGENT,
        "url": url,
        "host": host,
        "allowed": allowed,
        "fetched": fetched,
        "status": status,
    }
    line = json.dumps(entry)
    with _log_lock:
        with FETCH_LOG.open("a") as fh:
            fh.write(line + "\n")
        print(line, flush=True)


def fetch_locally(url: str, method: str) -> tuple[int, bytes]:
    """Request ``url`` from the in-container page server, its host in the Host header."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection("127.0.0.1", PAGE_PORT, timeout=10)
    try:
        conn.request(method, target, headers={"Host": parts.netloc, "User-Agent": AGENT})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


class _Json(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class PageHandler(_Json):
    """The stand-in for the whole internet: any host, any path, a small page."""

    def do_GET(self) -> None:
        self.page(200)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.page(201)

    def page(self, status: int) -> None:
        host = self.headers.get("Host", "?")
        body = f"<html><body><h1>{host}</h1><p>stand-in page for {self.path}</p></body></html>"
        self.send(status, body.encode(), "text/html")


class AgentHandler(_Json):
    def do_GET(self) -> None:
        if self.path == "/health":
            self.send(200, b'{"status": "ok"}')
        else:
            self.send(404, json.dumps({"error": f"no route {self.path}"}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/fetch":
            self.send(404, json.dumps({"error": f"no route {self.path}"}).encode())
            return
        try:
            request = json.loads(raw or b"null")
            url = str(request["url"])
        except (ValueError, TypeError, KeyError):
            self.send(400, b'{"error": "expected {\\"url\\": ...}"}')
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        allowed = bool(host) and host_allowed(host, read_allowlist(ALLOWLIST))
        if parts.scheme not in ("http", "https") or not host:
            log_attempt(url, host, allowed, False, None)
            self.send(400, json.dumps({"error": f"not an http(s) URL: {url}"}).encode())
            return
        if not allowed and not request.get("ignore_allowlist"):
            log_attempt(url, host, False, False, None)
            reply = {"url": url, "host": host, "allowed": False, "fetched": False, "status": None}
            self.send(403, json.dumps(reply).encode())
            return
        method = "POST" if str(request.get("method", "GET")).upper() == "POST" else "GET"
        try:
            status, body = fetch_locally(url, method)
        except OSError as exc:
            log_attempt(url, host, allowed, False, None)
            self.send(502, json.dumps({"error": f"page server: {exc}"}).encode())
            return
        log_attempt(url, host, allowed, True, status)
        reply = {
            "url": url,
            "host": host,
            "allowed": allowed,
            "fetched": True,
            "status": status,
            "body": body.decode(errors="replace")[:2000],
        }
        self.send(200, json.dumps(reply).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main() -> None:
    FETCH_LOG.parent.mkdir(parents=True, exist_ok=True)
    pages = Server(("127.0.0.1", PAGE_PORT), PageHandler)
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080"))
    server = Server((host, port), AgentHandler)
    stop = threading.Event()
    # Docker sends SIGTERM to PID 1, which has no default handler there
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for srv in (pages, server):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print(
        f"agent stand-in {AGENT} on http://{host}:{port}; allowlist {ALLOWLIST}; fetch log "
        f"{FETCH_LOG}; every fetch goes to the page server on 127.0.0.1:{PAGE_PORT}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    for srv in (server, pages):
        srv.shutdown()
        srv.server_close()


if __name__ == "__main__":
    main()
