"""Reading the logs blast-radius works from: time windows, proxy access lines (combined and JSON),
agent fetch records, and the files behind a glob (rotated and ``.gz`` ones).

Pure functions over text, so every format is unit-tested on lines written by hand in the formats
of the issue #7 spec. A line that parses as none of them is counted by the caller, never fatal:
an attacker can write odd requests, and a log cut by rotation ends mid-line.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from sbx.errors import ConfigError

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``2h``, ``30m``, ``1d`` (that long before now) or ISO 8601 (no zone: UTC), as UTC."""
    match = _RELATIVE.match(text)
    if match:
        try:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return (now or datetime.now(UTC)) - delta
        except OverflowError:
            raise ConfigError(
                f"The span {text.strip()!r} reaches before the year 1. Give a shorter span "
                "('30d') or an ISO 8601 time."
            ) from None
    try:
        when = datetime.fromisoformat(text.strip())
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ConfigError(
            f"Cannot read the time {text!r}. Give ISO 8601 ('2026-11-27T03:00:00Z', "
            "'2026-11-27 03:00') or a span before now ('30m', '2h', '1d')."
        ) from None


def parse_window(
    since: str, until: str | None, now: datetime | None = None
) -> tuple[datetime, datetime | None]:
    """``--since`` / ``--until`` as UTC times; refuses a window that ends before it starts."""
    now = now or datetime.now(UTC)
    start, end = parse_when(since, now), parse_when(until, now) if until else None
    if end is not None and end <= start:
        raise ConfigError(
            f"--until ({end:%Y-%m-%dT%H:%M:%SZ}) is not after --since "
            f"({start:%Y-%m-%dT%H:%M:%SZ}). Give a window that ends after it starts."
        )
    return start, end


class AccessLine(NamedTuple):
    """One proxy request; ``key_fp`` None when no (or an unknown) key was presented. A tuple,
    not a model: a busy proxy writes millions of these, and validation would cost the most."""

    time: datetime
    addr: str
    key_fp: str | None
    method: str
    path: str  # without its query string (a query may carry secrets)
    status: int


# The whole line, field by field: an escaped quoted string (nginx writes `"`, `\` and control
# characters as \xHH) cannot end early, so text a client sent cannot pose as another field or
# another line. The remote user is a key fingerprint or "-", nothing else.
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\x[0-9A-Fa-f]{2}|\\["\\])*"'
_COMBINED = re.compile(
    r"(?P<addr>[0-9A-Fa-f.:]{2,45}) - (?P<user>-|sha256:[0-9a-f]{16}) \[(?P<time>[^\]]{1,40})\] "
    r'"(?P<method>[A-Z]{1,16}) (?P<path>(?:[^\s"\\\x00-\x1f\x7f]|\\x[0-9A-Fa-f]{2})+)'
    r'(?: HTTP/\d(?:\.\d)?)?" (?P<status>[1-5]\d\d) (?:\d+|-)'
    rf"(?: {_QUOTED} {_QUOTED})?"
)
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{16}")
_METHOD = re.compile(r"[A-Z]{1,16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}


@functools.lru_cache(maxsize=4096)
def _clf_time(text: str) -> datetime | None:
    """``27/Nov/2026:03:15:00 +0000`` (strptime costs ~10x this, and busy logs repeat seconds)."""
    try:
        day, month, rest = text.split("/", 2)
        year, hh, mm, tail = rest.split(":", 3)
        ss, zone = tail.split(" ", 1)
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        local = datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    except (ValueError, KeyError, IndexError):
        return None
    return (local - offset).replace(tzinfo=UTC)


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _ip(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def json_object(text: str) -> dict[str, Any] | None:
    """A JSON object, else None: not JSON, not an object, or nested too deep to decode."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _utc(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
        # an offset can carry a time past year 1 or 9999 in UTC: OverflowError, not a time
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _status(value: object) -> int | None:
    """An HTTP status: an int from 100 to 599 (not a bool, a float or a string), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _access_json(text: str) -> AccessLine | None:
    data = json_object(text)
    if data is None:
        return None
    when, addr, fp = _utc(data.get("time")), _ip(data.get("remote_addr")), data.get("key_fp")
    method, path, status = data.get("method"), data.get("path"), _status(data.get("status"))
    if when is None or addr is None:
        return None
    if not (fp is None or (isinstance(fp, str) and _FINGERPRINT.fullmatch(fp))):
        return None
    if not (isinstance(method, str) and _METHOD.fullmatch(method)):
        return None
    if not (isinstance(path, str) and path and not _CONTROL.search(path)):
        return None
    if status is None:
        return None
    return AccessLine(when, addr, fp, method, _path_only(path), status)


def parse_access_line(line: str) -> AccessLine | None:
    """A combined-format or JSON access line of the proxy, else None. The whole line must be one
    well-formed record, every field of its type: a line with anything before, after or inside it
    that does not fit (another record a client smuggled in a header, say) is not a request."""
    text = line.rstrip("\r\n")
    if text.startswith("{"):
        return _access_json(text)
    match = _COMBINED.fullmatch(text)
    if match is None:
        return None
    stamp, addr = _clf_time(match["time"]), _ip(match["addr"])
    if stamp is None or addr is None:
        return None
    user = match["user"]
    return AccessLine(
        time=stamp,
        addr=addr,
        key_fp=None if user == "-" else user,
        method=match["method"],
        path=_path_only(match["path"]),
        status=int(match["status"]),
    )


class FetchRecord(BaseModel):
    """One fetch attempt an agent logged."""

    model_config = ConfigDict(frozen=True)

    time: datetime
    agent: str
    url: str
    host: str
    allowed: bool
    fetched: bool
    status: int | None


def parse_fetch_line(line: str, default_agent: str) -> FetchRecord | None:
    """One JSON line of an agent's fetch log, else None (every field checked for its type)."""
    data = json_object(line)
    if data is None:
        return None
    url, when = data.get("url"), _utc(data.get("time"))
    agent, host = data.get("agent") or default_agent, data.get("host")
    allowed, fetched, status = data.get("allowed", False), data.get("fetched", True), data.get(
        "status")  # fmt: skip
    if not isinstance(url, str) or when is None or not isinstance(agent, str):
        return None
    if not (host is None or isinstance(host, str)):
        return None
    if not (isinstance(allowed, bool) and isinstance(fetched, bool)):
        return None
    if not (status is None or _status(status) is not None):
        return None
    try:
        host = host or urlsplit(url).hostname or ""
    except ValueError:
        return None
    return FetchRecord(
        time=when, agent=agent, url=url, host=host.lower().rstrip("."), allowed=allowed,
        fetched=fetched, status=status,
    )  # fmt: skip


def agent_of(path: Path) -> str:
    """``logs/agents/internet-research.jsonl.2.gz`` -> ``internet-research``."""
    return path.name.split(".jsonl", 1)[0]


def read_allowlist(path: Path) -> list[str]:
    """Domains of an allowlist (``#`` comments and blank lines skipped; ``*.d`` kept as is)."""
    domains = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip().lower().rstrip(".")
        if entry:
            domains.append(entry)
    return domains


def host_allowed(host: str, allowlist: list[str]) -> bool:
    """A domain allows itself and its subdomains; ``*.d`` is read as ``d``."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        domain = entry.removeprefix("*.")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def log_files(stack_dir: Path, patterns: list[str]) -> list[Path]:
    """The files the globs name, oldest rotation first (``x.log.2.gz``, ``x.log.1``, ``x.log``)."""
    found = {p for pattern in patterns for p in stack_dir.glob(pattern) if p.is_file()}

    def order(path: Path) -> tuple[str, int]:
        numbers = [int(part) for part in path.name.split(".") if part.isdigit()]
        return (str(path.parent), -(numbers[-1] if numbers else 0))

    return sorted(found, key=lambda p: (*order(p), p.name))


def read_lines(path: Path) -> Iterator[str]:
    """Text lines of a log file, gzip-compressed or not (undecodable bytes replaced). Lines end
    at "\\n" only: a stray "\\r" stays inside its line (and spoils it), never starts a new one."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n") as handle:
            yield from handle
    else:
        with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
            yield from handle


def in_window(when: datetime, since: datetime, until: datetime | None) -> bool:
    return when >= since and (until is None or when <= until)
