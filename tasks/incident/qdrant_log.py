"""Qdrant's request lines, read exactly as Qdrant writes them, for blast-radius.

Where each fact of the format comes from (upstream source, not guesses):

- qdrant ``src/actix/mod.rs``: the REST app wraps ``Logger::default()`` with ``.exclude`` of
  ``/``, ``/metrics``, ``/telemetry``, ``/healthz``, ``/readyz`` and ``/livez`` (those are never
  logged). The Logger wraps outside ``NormalizePath``: the path is logged as the client sent it.
- actix-web ``actix-web/src/middleware/logger.rs``: the default format is
  ``%a "%r" %s %b "%{Referer}i" "%{User-Agent}i" %T``, written with ``log::log!`` at level Info
  and target ``module_path!()`` = ``actix_web::middleware::logger``. ``%a`` is
  ``ConnectionInfo::peer_addr`` (``info.rs``: the socket's IP without its port, ``-`` when
  unknown); ``%r`` is ``{method} {path}[?{query}] {version:?}`` (``HTTP/1.0`` .. ``HTTP/3.0``);
  ``%s`` the status as a number; ``%b`` the body bytes sent; ``%{..}i`` a request header's value
  through ``from_utf8_lossy``, not escaped, ``-`` when absent; ``%T`` seconds as ``{:.6}``.
- qdrant ``src/tracing/{mod,default}.rs``: ``log`` records go through ``tracing_log::LogTracer``
  to a ``tracing_subscriber::fmt::Layer`` in the default (Full) text format.
- tracing-subscriber 0.3 ``fmt/format/mod.rs`` (``Format<Full>``): ``{time} {level} {target}:
  {message}``; the time (``fmt/time/datetime.rs``) is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC;
  INFO is written as ``" INFO"`` (padded to five), hence two spaces after the time; span names
  would come before the target, and actix's logger runs in none. Since 0.3.20 the message's
  ESC, BEL, BS, FF, DEL and C1 characters are written escaped (``fmt/format/escape.rs``).
  With colour on (a TTY) escape codes surround the fields: such lines do not parse, and
  compose runs Qdrant without a TTY.
- ``docker logs --timestamps`` puts an RFC 3339 time with nanoseconds and a space first.

What the parser trusts is the prefix no client can write (time, level, target), the peer address
actix writes, and the request line up to its first space-free path: a method from a fixed set, a
printable ASCII path with no space (the HTTP parser splits the request line on spaces; a
path with other bytes is left unparsed, and counted), the version, then the
status and size the server wrote. Referer and User-Agent are the client's text; they come after
all of that and are only required to end the line before ``%T``. So text a client sent, however
it is quoted, cannot make a line a request or change which request it is.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict

# methods actix-web names (http::Method's constants); Qdrant's API uses five of them
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
_LINE = re.compile(
    rf"(?:(?P<docker>{_TIME}(?:\.\d{{1,9}})?)Z )?"  # docker logs --timestamps
    rf"(?P<time>{_TIME}\.\d{{6}})Z  INFO actix_web::middleware::logger: "  # tracing's prefix
    r"(?P<addr>[0-9A-Fa-f.:]{2,45}|-) "  # %a
    rf'"(?P<method>{"|".join(METHODS)}) (?P<path>/[\x21-\x7e]*) HTTP/[123]\.[01]" '  # "%r"
    r"(?P<status>[1-5]\d\d) \d{1,20} "  # %s (100-599) %b
    r'"[^\r\n]*" \d{1,12}\.\d{6}'  # "%{Referer}i" "%{User-Agent}i" %T: the client's text
)


class QdrantRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: datetime
    method: str
    path: str
    status: int

    @property
    def collection(self) -> str | None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        return parts[1] if len(parts) >= 2 and parts[0] == "collections" else None

    @property
    def writes(self) -> bool:
        """Whether the request changes the collection (upserts, deletes, payload, index)."""
        rest = self.path.split("?", 1)[0].strip("/").split("/")[2:]
        if self.method in ("PUT", "PATCH", "DELETE"):
            return True
        return self.method == "POST" and bool(rest) and rest[-1] in (
            "delete", "payload", "overwrite", "vectors", "batch", "upload", "recover",
        )  # fmt: skip


def _utc(text: str) -> datetime | None:
    """``2026-11-27T03:15:00.123456789`` as UTC (nanoseconds cut to micro), None if no time."""
    whole, _, fraction = text.partition(".")
    try:
        return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}+00:00")
    except ValueError:
        return None


def parse_qdrant_line(line: str) -> QdrantRequest | None:
    """A request line Qdrant's actix logger wrote (with or without docker's timestamp), else
    None: the whole line must be one, every field of its shape and each time a real time."""
    match = _LINE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        return None
    when = _utc(match["time"])
    if when is None or (match["docker"] is not None and _utc(match["docker"]) is None):
        return None
    return QdrantRequest(
        time=when, method=match["method"], path=match["path"], status=int(match["status"])
    )
