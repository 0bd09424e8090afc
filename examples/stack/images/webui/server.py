"""Stand-in for Open WebUI (the stack's `open-webui` service), standard library only.

What sbx cares about in Open WebUI is its state, not its UI: a live SQLite database in WAL mode
that is written to while backups run, plus an uploads folder. This server keeps exactly that
busy, and answers the few HTTP endpoints health checks use, shaped like Open WebUI 0.3.x:

    GET /health       {"status": true}
    GET /auth, /      a small HTML login page titled "Open WebUI"
    GET /api/version  {"version": "0.3.35-standin"}
    GET /api/stats    {"chat_rows": n, "last_id": id, "journal_mode": "wal"} (stand-in only)
    GET /api/standin/openai  what the OpenAI connection answers (stand-in only, below)

The OpenAI connection as upstream configures it (OPENAI_API_BASE_URL, OPENAI_API_KEY): upstream
lists its models from ``GET <base>/models`` with ``Authorization: Bearer <key>``; so does this
stand-in, live on each ``/api/standin/openai``, answering the URL, the status the worker gave
(401 with a wrong key) and the model ids — so a box whose Open WebUI holds the wrong worker
key, or none, shows it.

$DATA_DIR (/app/backend/data) holds webui.db with tables `user`, `chat` and `config` (columns
loosely follow Open WebUI's), in WAL mode, and uploads/ with a small file. A writer thread
commits one `chat` row every STANDIN_WRITE_INTERVAL seconds (0.2; 0 turns it off), each in its
own transaction, with a few hundred bytes of JSON. SQLite's default autocheckpoint (1000 pages)
is left alone on purpose: the -wal file then always holds recent commits, which is what makes a
naive file copy of webui.db lose data and a WAL-safe backup necessary.

Schema revisions, as Open WebUI's alembic keeps them (table ``alembic_version``, column
``version_num``; upstream backend/open_webui/migrations): a new database is stamped with the
first revision below. STANDIN_MIGRATE=1 makes this image a newer Open WebUI release: on start it
runs the next "migration" (revision 3781e22d8b01, as upstream's: a new table, a new column) and
reports version 0.5.4-standin. A database whose revision this image does not know (written by a
newer release) is handled as upstream's ``run_migrations`` handles it: alembic fails with "Can't
locate revision identified by ...", the error is logged, and the server starts anyway on a schema
it does not know — which is why sbx refuses to restore newer data into an older image.

STANDIN_FAIL_MODE=crash: the process exits 1 STANDIN_CRASH_AFTER seconds (2) after start (a
crash loop, after any migration ran).

Other environment: PORT (8080), HOST (0.0.0.0).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MIGRATE = os.environ.get("STANDIN_MIGRATE", "").strip() in ("1", "true", "yes")
VERSION = "0.5.4-standin" if MIGRATE else "0.3.35-standin"
# upstream revisions, oldest first: 7826ab40b532 (update file table), 3781e22d8b01 (update
# message & channel tables, which revises it)
REVISIONS = ["7826ab40b532", "3781e22d8b01"] if MIGRATE else ["7826ab40b532"]
FAIL_MODE = os.environ.get("STANDIN_FAIL_MODE", "none").strip().lower() or "none"
CRASH_AFTER = float(os.environ.get("STANDIN_CRASH_AFTER", "2"))
DATA_DIR = Path(os.environ.get("DATA_DIR", "/app/backend/data"))
DB_PATH = DATA_DIR / "webui.db"
WRITE_INTERVAL = float(os.environ.get("STANDIN_WRITE_INTERVAL", "0.2"))
ADMIN_ID = "00000000-0000-4000-8000-000000000001"

SCHEMA = """
CREATE TABLE IF NOT EXISTS user (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
    profile_image_url TEXT, api_key TEXT, settings TEXT, info TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_active_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chat (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, title TEXT NOT NULL,
    chat TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL, share_id TEXT,
    archived INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chat_user_id ON chat (user_id);
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL, version INTEGER NOT NULL,
    created_at REAL NOT NULL, updated_at REAL
);
"""

LOGIN_PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Open WebUI</title></head>
<body>
  <h1>Sign in to Open WebUI</h1>
  <form method="post" action="/api/v1/auths/signin">
    <label>Email <input type="email" name="email" autocomplete="email" required></label>
    <label>Password <input type="password" name="password" required></label>
    <button type="submit">Sign in</button>
  </form>
  <p><small>stand-in</small></p>
</body>
</html>
"""


def connect() -> sqlite3.Connection:
    # a generous busy timeout: a backup reading the file may briefly hold a lock
    conn = sqlite3.connect(DB_PATH, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def init_data() -> None:
    """Create the database (WAL, schema, an admin user, the config row) and uploads/."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / "uploads").mkdir(exist_ok=True)
    welcome = DATA_DIR / "uploads" / "welcome.txt"
    if not welcome.exists():
        welcome.write_text("Uploaded files land here (Open WebUI stand-in).\n")
    conn = connect()
    try:
        # journal_mode=WAL is persistent: it is stored in the database file itself
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            sys.exit(f"could not put {DB_PATH} in WAL mode (got {mode!r})")
        with conn:
            conn.executescript(SCHEMA)
            now = int(time.time())
            conn.execute(
                "INSERT OR IGNORE INTO user (id, name, email, role, profile_image_url, settings,"
                " info, created_at, updated_at, last_active_at)"
                " VALUES (?, 'Admin', 'admin@example.com', 'admin', '/user.png', '{}', '{}',"
                " ?, ?, ?)",
                (ADMIN_ID, now, now, now),
            )
            if conn.execute("SELECT COUNT(*) FROM config").fetchone()[0] == 0:
                conn.execute(
                    "INSERT INTO config (data, version, created_at) VALUES (?, 0, ?)",
                    (json.dumps({"ui": {"default_locale": "en-US"}}), time.time()),
                )
        run_migrations(conn)
    finally:
        conn.close()


def schema_revision(conn: sqlite3.Connection) -> str | None:
    conn.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def run_migrations(conn: sqlite3.Connection) -> None:
    """Upgrade to this image's head revision, as upstream's config.run_migrations does: an error
    (a revision it does not know) is logged and the server starts anyway."""
    with conn:
        current = schema_revision(conn)
        if current is None:  # a new database: stamped with the oldest revision
            conn.execute("INSERT INTO alembic_version VALUES (?)", (REVISIONS[0],))
            current = REVISIONS[0]
    if current not in REVISIONS:
        print(
            f"ERROR [open_webui.config] Error running migrations: Can't locate revision "
            f"identified by '{current}'",
            flush=True,
        )
        return
    for revision in REVISIONS[REVISIONS.index(current) + 1 :]:
        with conn:  # one transaction per revision, as alembic runs them on SQLite
            conn.execute(
                "CREATE TABLE IF NOT EXISTS message_reaction (id TEXT PRIMARY KEY, user_id TEXT"
                " NOT NULL, message_id TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT)"
            )
            conn.execute("ALTER TABLE chat ADD COLUMN folder_id TEXT")
            conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        print(
            f"INFO [alembic.runtime.migration] Running upgrade {current} -> {revision}", flush=True
        )
        current = revision


def chat_payload(seq: int) -> str:
    """A few hundred bytes shaped like Open WebUI's chat JSON, with a digest to spot damage."""
    messages = [
        {
            "id": str(uuid.uuid4()),
            "role": "user",
            "content": f"Stand-in question number {seq}: summarise the quarterly notes.",
        },
        {
            "id": str(uuid.uuid4()),
            "role": "assistant",
            "content": f"Stand-in answer number {seq}: ok, nothing unusual in the notes.",
        },
    ]
    body = json.dumps(messages, sort_keys=True)
    return json.dumps(
        {
            "title": f"Chat {seq}",
            "models": ["standin-model"],
            "messages": messages,
            "seq": seq,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
        }
    )


def write_chats(stop: threading.Event) -> None:
    """Commit one chat row per interval until stopped; each row is its own transaction."""
    conn = connect()
    try:
        seq = conn.execute("SELECT COALESCE(MAX(id), 0) FROM chat").fetchone()[0]
        while not stop.wait(WRITE_INTERVAL):
            seq += 1
            try:
                with conn:  # BEGIN ... COMMIT around the one insert
                    conn.execute(
                        "INSERT INTO chat (user_id, title, chat, created_at) VALUES (?, ?, ?, ?)",
                        (ADMIN_ID, f"Chat {seq}", chat_payload(seq), time.time()),
                    )
            except sqlite3.OperationalError as exc:  # e.g. locked for longer than the timeout
                print(f"chat writer: insert {seq} failed, will retry: {exc}", flush=True)
                seq -= 1
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn-standin"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")

    def send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send(200, b'{"status": true}')
        elif path in ("/", "/auth"):
            self.send(200, LOGIN_PAGE, "text/html; charset=utf-8")
        elif path == "/api/version":
            self.send(200, json.dumps({"version": VERSION}).encode())
        elif path == "/api/stats":
            # a connection per request: sqlite3 connections are not shared across threads
            conn = connect()
            try:
                rows, last = conn.execute("SELECT COUNT(*), MAX(id) FROM chat").fetchone()
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            finally:
                conn.close()
            stats = {"chat_rows": rows, "last_id": last, "journal_mode": mode}
            self.send(200, json.dumps(stats).encode())
        elif path == "/api/standin/openai":
            self.send(200, json.dumps(openai()).encode())
        else:
            self.send(404, b'{"detail": "Not Found"}')

    do_HEAD = do_GET


def openai() -> dict[str, Any]:
    """What the configured OpenAI connection answers to the model listing upstream makes."""
    base = os.environ.get("OPENAI_API_BASE_URL", "").rstrip("/")
    if not base:
        return {"base_url": None}
    request = urllib.request.Request(f"{base}/models")
    key = os.environ.get("OPENAI_API_KEY", "")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            listed = json.loads(answer.read())
            ids = [m.get("id") for m in listed.get("data", [])]
            return {"base_url": base, "status": answer.status, "models": ids}
    except urllib.error.HTTPError as exc:
        return {"base_url": base, "status": exc.code, "models": []}
    except (OSError, ValueError) as exc:
        return {"base_url": base, "status": None, "error": str(exc), "models": []}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up shutdown


def crash_later(delay: float) -> None:
    time.sleep(delay)
    print(f"ERROR: stand-in fault STANDIN_FAIL_MODE=crash after {delay}s", flush=True)
    os._exit(1)


def main() -> None:
    init_data()
    if FAIL_MODE == "crash":
        threading.Thread(target=crash_later, args=(CRASH_AFTER,), daemon=True).start()
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080"))
    server = Server((host, port), Handler)
    stop = threading.Event()
    # PID 1 in a container has no default SIGTERM action: without a handler `docker stop`
    # waits 10 s and kills, possibly in the middle of a commit
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer_stop = threading.Event()
    writer = threading.Thread(target=write_chats, args=(writer_stop,), daemon=True)
    if WRITE_INTERVAL > 0:
        writer.start()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    print(
        f"Open WebUI stand-in {VERSION} on http://{host}:{port}, database {DB_PATH}, "
        f"a chat row every {WRITE_INTERVAL}s",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    print("Shutting down", flush=True)
    server.shutdown()
    server.server_close()
    writer_stop.set()
    if writer.is_alive():
        writer.join(timeout=15)  # the writer closes its connection: the last close checkpoints


if __name__ == "__main__":
    main()
