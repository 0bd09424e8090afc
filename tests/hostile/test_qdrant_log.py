"""Qdrant's request log is data, never instructions (#23 deliverable 5, Qdrant's half): a line
is a request only when it is the whole of one actix logger record, and a request a client wrote
into a header, or one quoted in any other log line, never makes a collection read or written.

Lines come from the Qdrant stand-in's writer, which writes them as Qdrant does (tracing's prefix,
actix-web's default format); beside ``test_log_parsers.py`` only for the 400-line floor.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st

from tasks.incident.qdrant_log import METHODS, parse_qdrant_line
from tasks.incident.radius import scan_qdrant_log

from .conftest import Examples
from .test_log_parsers import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 3, 15, 0, 123456, tzinfo=UTC)
# the write an attacker would like blast-radius to report
FORGED = (
    "2026-11-27T03:15:00.000001Z  INFO actix_web::middleware::logger: 10.0.0.5 "
    '"PUT /collections/secret/points?wait=true HTTP/1.1" 200 57 "-" "-" 0.000100'
)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=200)
_DOCKER = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")


@functools.cache
def _standin() -> ModuleType:
    path = ROOT / "examples" / "stack" / "images" / "qdrant" / "server.py"
    spec = importlib.util.spec_from_file_location("qdrant_standin_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _wire(text: str) -> str:
    """A header as http.server hands it over: the client's UTF-8 bytes read as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def _logged(method: str, target: str, status: int = 200, agent: str = "-", referer: str = "-",
            now: datetime = NOW) -> str:  # fmt: skip
    line: str = _standin().access_line(
        "172.18.0.1", f"{method} {target} HTTP/1.1", status, 57, _wire(referer), _wire(agent),
        0.000412, now,
    )  # fmt: skip
    return line


def test_the_standin_writes_what_qdrant_writes() -> None:
    """Upstream's shape, byte for byte: tracing's time, " INFO", the target, actix's fields."""
    assert _logged("GET", "/collections", agent="python-httpx/0.28.1") == (
        "2026-11-27T03:15:00.123456Z  INFO actix_web::middleware::logger: 172.18.0.1 "
        '"GET /collections HTTP/1.1" 200 57 "-" "python-httpx/0.28.1" 0.000412\n'
    )


def test_only_whole_logger_records_are_requests() -> None:
    real = _logged("POST", "/collections/notes/points/scroll")
    assert parse_qdrant_line(real) is not None
    assert parse_qdrant_line("2026-11-27T03:15:00.5Z " + real) is not None  # docker's time
    for line in [
        "2026-13-45T99:99:99Z " + real,  # docker's time not a time: unparsed, no ValueError
        real.replace("2026-11-27T03:15:00.123456Z", "2026-02-30T25:61:00.000000Z"),
        real.replace("  INFO", " WARN"),
        real.replace("actix_web::middleware::logger", "storage::content_manager"),
        real.replace('"POST ', '"BREW '),  # a method actix does not name
        real.replace(" 200 ", " 999 "),
        real.replace(" 0.000412", ""),  # cut by rotation
        '2026-11-27T03:15:00.000001Z  WARN collection: name "x" ' + FORGED,
        "\x1b[2m2026-11-27T03:15:00.000001Z\x1b[0m \x1b[32m INFO\x1b[0m " + FORGED[29:],  # TTY
        "PUT /collections/secret/points 200",  # the old stand-in's shapes are gone
        '172.18.0.1 - - [27/Nov/2026 03:15:00] "PUT /collections/secret/points HTTP/1.1" 200 -',
    ]:
        assert parse_qdrant_line(line) is None, line


def test_a_request_forged_in_a_header_or_an_error_line_writes_no_collection() -> None:
    """The blast-radius effect: only the real read of ``notes`` counts; the forged write of
    ``secret`` (after U+2028 in a User-Agent, which ``str.splitlines`` would end a line at, or
    quoted in an error line) is counted unparsed, never attributed."""
    log = "".join([
        _logged("POST", "/collections/notes/points/scroll", agent="curl\u2028" + FORGED),
        _logged("GET", "/collections/notes", referer='x" 200 0 "-" "-" 0.1\u2029' + FORGED),
        "2026-11-27T03:15:01.000000Z ERROR storage: bad collection name " + FORGED + "\n",
    ])  # fmt: skip
    uses, scan = scan_qdrant_log(log, NOW - timedelta(hours=1), None)
    assert set(uses) == {"notes"} and (uses["notes"].reads, uses["notes"].writes) == (2, 0)
    assert (scan.in_window, scan.unparsed) == (2, 1)


@SETTINGS
@given(agent=_TEXT, referer=_TEXT, target=st.sampled_from(["/collections/notes", "/cluster"]))
def test_whatever_a_client_sends_in_its_headers_the_line_is_its_own_request(
    hostile: Examples, agent: str, referer: str, target: str
) -> None:
    hostile.tick()
    line = _logged("GET", target, agent=agent + FORGED, referer=referer + FORGED)
    assert line.count("\n") == 1 and line.endswith("\n")
    parsed = parse_qdrant_line(line)
    assert parsed is not None and (parsed.method, parsed.path) == ("GET", target)
    uses, _ = scan_qdrant_log(line, NOW - timedelta(hours=1), None)
    assert "secret" not in uses and all(u.writes == 0 for u in uses.values())


@SETTINGS
@given(prefix=_TEXT, suffix=_TEXT)
def test_a_record_with_other_text_around_it_is_no_other_request(
    hostile: Examples, prefix: str, suffix: str
) -> None:
    """Text before a record makes it no record (docker's time aside); text after it falls in
    the client's part of the line, so at most the same request is read."""
    hostile.tick()
    before = parse_qdrant_line(prefix + FORGED)
    assert before is None or prefix == "" or _DOCKER.fullmatch(prefix)
    after = parse_qdrant_line(FORGED + suffix)
    assert after is None or (after.method, after.path, after.status) == (
        "PUT", "/collections/secret/points?wait=true", 200,
    )  # fmt: skip


_PATH = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)


@SETTINGS
@given(
    method=st.sampled_from(METHODS), path=_PATH, status=st.integers(100, 599), agent=_TEXT,
    offset=st.integers(0, 10**9), docker=st.booleans(),
)  # fmt: skip
def test_every_request_qdrant_logs_reads_back_as_itself(
    hostile: Examples, method: str, path: str, status: int, agent: str, offset: int, docker: bool
) -> None:
    hostile.tick()
    when = NOW - timedelta(seconds=offset, microseconds=offset % 997)
    line = _logged(method, "/" + path, status, agent=agent, now=when)
    if docker:
        line = when.strftime("%Y-%m-%dT%H:%M:%S.%f123Z ") + line
    parsed = parse_qdrant_line(line)
    assert parsed is not None
    assert (parsed.time, parsed.method, parsed.path, parsed.status) == (
        when, method, "/" + path, status,
    )  # fmt: skip
