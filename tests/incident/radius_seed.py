"""A seeded compromise written straight into a stack's files, in the issue #7 spec's formats.

The same story ``tests/bed/incident_seed.py`` plays through the real proxy and agent: every key
used normally from inside, the ``agent`` key leaked and used from 203.0.113.77, one allowlisted
fetch and one fetch of an off-list host, one refused attempt. Spread over the current access log
(combined format), a rotated one (JSON) and a gzipped older one, plus lines from before
``since`` and garbage lines, so the parsers see every case the stack can produce.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.incident.keys import key_fingerprint

KEYS = {"ops": "sk-ops-FAKE-0001-aaaa", "webui": "sk-webui-FAKE-0002-bbbb",
        "agent": "sk-agent-FAKE-0003-cccc"}  # fmt: skip
OUTSIDE = "203.0.113.77"
OFF_LIST_URL = "http://exfil.attacker.test/upload"
ALLOWED_URL = "https://en.wikipedia.org/wiki/Sealed_box"
REFUSED_URL = "http://refused.attacker.test/probe"


@dataclass(frozen=True)
class Seeded:
    leaked_key_name: str
    leaked_fp: str
    outside_addr: str
    off_list_url: str
    since: datetime


def combined(addr: str, fp: str | None, at: datetime, method: str, path: str, status: int) -> str:
    stamp = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{addr} - {fp or "-"} [{stamp}] "{method} {path} HTTP/1.1" {status} 123 "-" "ua/1"'


def as_json(addr: str, fp: str | None, at: datetime, method: str, path: str, status: int) -> str:
    return json.dumps({
        "time": at.isoformat(), "remote_addr": addr, "key_fp": fp, "method": method,
        "path": path, "status": status, "bytes": 123, "user_agent": "ua/1",
    })  # fmt: skip


def qdrant_line(
    at: datetime, method: str, path: str, status: int = 200, agent: str = "python-httpx/0.28.1"
) -> str:
    """A request as Qdrant logs it: tracing's prefix, then actix-web's default Logger format."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"{stamp}  INFO actix_web::middleware::logger: 172.18.0.1 "
        f'"{method} {path} HTTP/1.1" {status} 57 "-" "{agent}" 0.000412'
    )


def fetch(at: datetime, url: str, host: str, allowed: bool, fetched: bool) -> str:
    return json.dumps({
        "time": at.isoformat(), "agent": "internet-research", "url": url, "host": host,
        "allowed": allowed, "fetched": fetched, "status": 200 if fetched else None,
    })  # fmt: skip


def seed_files(stack: Path, now: datetime | None = None) -> Seeded:
    """Write keys file, allowlist, proxy access logs and agent fetch log into ``stack``."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(hours=1)
    early = since - timedelta(hours=2)
    fps = {name: key_fingerprint(value) for name, value in KEYS.items()}
    (stack / "proxy").mkdir(parents=True, exist_ok=True)
    (stack / "proxy" / "keys.txt").write_text(
        "# API keys the proxy accepts: NAME KEY (example values, not secrets)\n\n"
        + "".join(f"{name}   {value}\n" for name, value in KEYS.items())
    )
    logs = stack / "logs" / "proxy"
    logs.mkdir(parents=True, exist_ok=True)
    leaked = fps["agent"]
    with gzip.open(logs / "access.log.2.gz", "wt") as old:  # rotated before the window
        old.write(combined(OUTSIDE, fps["ops"], early, "GET", "/v1/models", 200) + "\n")
        old.write(as_json("10.0.0.5", fps["webui"], since + timedelta(minutes=1), "GET",
                          "/v1/models", 200) + "\n")  # fmt: skip
    inside = "".join(
        as_json(addr, fp, since + timedelta(minutes=5), "POST", "/v1/chat/completions?t=1", 200)
        + "\n"
        for addr, fp in zip(["172.18.0.1"] * 3, fps.values(), strict=True)
    )
    (logs / "access.log.1").write_text(
        inside
        + "this line is neither format\n"
        + as_json(OUTSIDE, leaked, since + timedelta(minutes=10), "GET", "/v1/models", 200)
        + "\n"
    )
    (logs / "access.log").write_text(
        combined("127.0.0.1", None, since + timedelta(minutes=11), "GET", "/health", 200) + "\n"
        + combined(OUTSIDE, leaked, since + timedelta(minutes=12), "POST",
                   "/v1/chat/completions", 200) + "\n"
        + combined("192.168.1.20", fps["ops"], since + timedelta(minutes=13), "GET",
                   "/v1/models", 200) + "\n"
        + '198.51.100.9 - - [garbled'  # a line cut by rotation
    )  # fmt: skip
    agents = stack / "logs" / "agents"
    agents.mkdir(parents=True, exist_ok=True)
    (agents / "internet-research.jsonl").write_text(
        fetch(early, "http://old.attacker.test/x", "old.attacker.test", False, True) + "\n"
        + fetch(since + timedelta(minutes=2), ALLOWED_URL, "en.wikipedia.org", True, True) + "\n"
        + fetch(since + timedelta(minutes=3), REFUSED_URL, "refused.attacker.test", False, False)
        + "\n"
        + fetch(since + timedelta(minutes=4), OFF_LIST_URL, "exfil.attacker.test", False, True)
        + "\n{not json\n"
    )  # fmt: skip
    allow = stack / "agents" / "internet-research" / "allowlist.txt"
    allow.parent.mkdir(parents=True, exist_ok=True)
    if not allow.exists():
        allow.write_text("# hosts\nen.wikipedia.org\n*.arxiv.org\n")
    return Seeded("agent", leaked, OUTSIDE, OFF_LIST_URL, since)
