"""Logs are data, never instructions (#23 findings 5 and 7): every parser blast-radius and the
verdict check use takes any line without an exception, counts what does not parse, and never
attributes a request to a key from text a client wrote."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbx.errors import ConfigError
from tasks.health.verdicts import count_tags
from tasks.incident.logs import (
    parse_access_line,
    parse_fetch_line,
    parse_when,
    read_lines,
)
from tasks.incident.qdrant_log import parse_qdrant_line

from .conftest import Examples

ROOT = Path(__file__).resolve().parents[2]
FP = "sha256:3f1c0a9e5b7d2c48"  # the key an attacker wants revoked
NOW = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)
FORGED = (
    f'198.51.100.66 - {FP} [27/Nov/2026:03:15:00 +0000] "GET /v1/models HTTP/1.1" 200 1 "-" "x"'
)
# too_slow and data_too_large judge the generator on a loaded CI machine, not the parsers: a
# health check there failed a run whose every example passed
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@functools.cache
def _proxy_standin() -> ModuleType:
    path = ROOT / "examples" / "stack" / "images" / "proxy" / "server.py"
    spec = importlib.util.spec_from_file_location("proxy_standin_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "time": NOW.isoformat(), "remote_addr": "172.18.0.1", "key_fp": None, "method": "GET",
        "path": "/v1/models", "protocol": "HTTP/1.1", "status": 401, "bytes": 10,
        "referer": None, "user_agent": "curl/8",
    }  # fmt: skip
    return {**entry, **over}


# --- finding 5: a forged line in a header -------------------------------------------------------


@pytest.mark.parametrize("sep", ["\n", "\r\n", "\n ", "\r", "\n\t"])
def test_a_line_forged_in_a_logged_header_is_never_attributed(tmp_path: Path, sep: str) -> None:
    """The header text, written raw by an old proxy or folded by a parser, must not become a
    request of key FP: the line that carries it does not parse, nor does an indented copy."""
    log = tmp_path / "access.log"
    real = f'172.18.0.1 - - [27/Nov/2026:03:15:00 +0000] "GET /v1/x HTTP/1.1" 401 10 "-" "a{sep}'
    log.write_text(real + FORGED + '"\n', newline="")
    parsed = [parse_access_line(line) for line in read_lines(log)]
    assert all(p is None or p.key_fp != FP for p in parsed), parsed


def test_the_standin_proxy_writes_one_escaped_line_whatever_the_client_sent() -> None:
    proxy = _proxy_standin()
    hostile = "x\n" + FORGED + '\r\n\x1b[2K"\\'
    entry = _entry(user_agent=hostile, referer=hostile, path="/v1/" + hostile)
    line = proxy.format_access(entry)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    parsed = parse_access_line(line)
    assert parsed is not None and parsed.key_fp is None and parsed.addr == "172.18.0.1"


def test_the_standin_proxy_believes_x_forwarded_for_only_when_it_is_an_address() -> None:
    proxy = _proxy_standin()

    class Fake:
        def __init__(self, forwarded: str) -> None:
            self.client_address = ("127.0.0.1", 5555)
            self.headers = {"X-Forwarded-For": forwarded}

    assert proxy.Handler.client_addr(Fake(FORGED)) == "127.0.0.1"
    assert proxy.Handler.client_addr(Fake(" 203.0.113.9 , 10.0.0.1")) == "203.0.113.9"


def test_the_json_format_has_to_be_exact_too() -> None:
    good = {"time": NOW.isoformat(), "remote_addr": "203.0.113.9", "key_fp": FP,
            "method": "GET", "path": "/v1/models", "status": 200}  # fmt: skip
    assert parse_access_line(json.dumps(good)) is not None
    assert parse_access_line(" " + json.dumps(good)) is None  # not a whole line of its own
    for field, value in [("key_fp", {"a": 1}), ("key_fp", "ops"), ("remote_addr", "x y"),
                         ("status", True), ("status", "200"), ("method", "GET /x"),
                         ("path", "/a\nb"), ("time", 5)]:  # fmt: skip
        assert parse_access_line(json.dumps({**good, field: value})) is None, field


# --- finding 7: wrong types, huge numbers, deep nesting, huge spans -----------------------------


def test_wrong_types_huge_numbers_and_deep_nesting_are_unparsed_not_fatal() -> None:
    base = f'{{"time": "{NOW.isoformat()}", "remote_addr": "1.2.3.4", "method": "GET", ' \
        '"path": "/v1/x", '  # fmt: skip
    assert parse_access_line(base + '"key_fp": {"a": 1}, "status": 200}') is None
    assert parse_access_line(base + '"key_fp": null, "status": 1e400}') is None
    deep = "[" * 200_000 + "]" * 200_000
    assert parse_access_line('{"a": ' + deep + "}") is None
    assert parse_fetch_line('{"a": ' + deep + "}", "agent") is None
    fetch = f'{{"time": "{NOW.isoformat()}", "url": "http://a.example/", "status": 1e400}}'
    assert parse_fetch_line(fetch, "agent") is None
    assert parse_fetch_line(fetch.replace("1e400", "200").replace('"url"', '"url2"'), "a") is None


def test_verdict_lines_of_the_wrong_shape_are_counted_and_the_good_ones_still_count() -> None:
    since = NOW - timedelta(minutes=5)
    good = json.dumps({"time": NOW.isoformat(), "tags": ["prompt-injection"]})
    lines = [good, good, good, '{"time": "2026-11-27T03:15:00Z", "tags": [{"a": 1}]}',
             "[" * 200_000, '{"time": 1e400, "tags": []}', "[1, 2]"]  # fmt: skip
    counts, bad = count_tags(lines, {"prompt-injection"}, since)
    assert counts["prompt-injection"] == 3 and bad == 4


@pytest.mark.parametrize("edge", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_whose_offset_leaves_the_calendar_is_unparsed_not_fatal(edge: str) -> None:
    access = {"time": edge, "remote_addr": "1.2.3.4", "method": "GET", "path": "/v1/x",
              "status": 200, "key_fp": None}  # fmt: skip
    assert parse_access_line(json.dumps(access)) is None
    fetch = {"time": edge, "url": "http://a.example/"}
    assert parse_fetch_line(json.dumps(fetch), "agent") is None
    # the verdict check compares aware times without converting them: it keeps the line
    counts, bad = count_tags([json.dumps({"time": edge, "tags": ["pii"]})], {"pii"}, NOW)
    assert counts["pii"] == (edge > NOW.isoformat()) and bad == 0
    with pytest.raises(ConfigError, match="Cannot read the time"):
        parse_when(edge)


def test_a_span_before_the_year_one_is_refused_with_a_config_error() -> None:
    with pytest.raises(ConfigError, match="reaches before the year 1"):
        parse_when("99999999999d")
    with pytest.raises(ConfigError, match="reaches before the year 1"):
        parse_when("800000w")


# --- generated input (Hypothesis) -----------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=200)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)
_FIELDS = ("time", "remote_addr", "key_fp", "method", "path", "status", "url", "host", "agent",
           "allowed", "fetched", "tags", "verdict")  # fmt: skip
_RECORD = st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=8)


@SETTINGS
@given(header=_TEXT, path=_TEXT, method=_TEXT)
def test_proxy_lines_from_any_client_text_parse_and_name_no_key(
    hostile: Examples, header: str, path: str, method: str
) -> None:
    """Whatever a keyless client sends, the stand-in writes one line that parses as a keyless
    request from its real address, or does not parse: never a request of some key."""
    hostile.tick()
    line = _proxy_standin().format_access(_entry(method=method or "GET", path="/" + path,
                                      user_agent=header + FORGED, referer=header))  # fmt: skip
    assert line.count("\n") == 0
    parsed = parse_access_line(line)
    assert parsed is None or (parsed.key_fp is None and parsed.addr == "172.18.0.1")


@SETTINGS
@given(lines=st.lists(_TEXT | _RECORD.map(json.dumps), max_size=20))
def test_any_text_through_every_parser_never_raises(hostile: Examples, lines: list[str]) -> None:
    hostile.tick(len(lines))
    for line in lines:
        access = parse_access_line(line)
        assert access is None or (access.key_fp is None or access.key_fp.startswith("sha256:"))
        assert access is None or isinstance(access.status, int)
        parse_fetch_line(line, "agent")
        parse_qdrant_line(line)
    _, bad = count_tags(lines, {"prompt-injection"}, NOW)
    assert bad <= len(lines)


@SETTINGS
@given(prefix=_TEXT, suffix=_TEXT)
def test_a_forged_record_inside_other_text_is_never_attributed(
    hostile: Examples, prefix: str, suffix: str
) -> None:
    """A valid record with text after it, or before it (other than more address digits), on the
    same line is not a record: only whole lines count."""
    hostile.tick()
    after = parse_access_line(FORGED + suffix)
    assert after is None or suffix.rstrip("\r\n") == ""
    before = parse_access_line(prefix + FORGED)
    assert before is None or all(c in "0123456789abcdefABCDEF.:" for c in prefix)
    as_json = json.dumps({"time": NOW.isoformat(), "remote_addr": "198.51.100.66",
                          "key_fp": FP, "method": "GET", "path": "/", "status": 200})  # fmt: skip
    inside = parse_access_line(prefix + as_json + suffix)
    assert inside is None or (prefix == "" and suffix.rstrip("\r\n").strip() == "")


_FETCH = st.fixed_dictionaries(
    {},
    optional={
        "time": st.just(NOW.isoformat()) | _JSON,
        "url": st.just("http://a.example/x") | _JSON,
        "agent": _JSON,
        "host": _JSON,
        "allowed": _JSON,
        "fetched": _JSON,
        "status": st.just(200) | _JSON,
    },
)


@SETTINGS
@given(record=_FETCH)
def test_agent_fetch_records_are_taken_only_with_every_field_of_its_type(
    hostile: Examples, record: dict[str, object]
) -> None:
    hostile.tick()
    parsed = parse_fetch_line(json.dumps(record), "agent")
    if parsed is not None:
        assert isinstance(record["url"], str) and isinstance(record["time"], str)
        assert isinstance(parsed.allowed, bool) and isinstance(parsed.fetched, bool)
        assert parsed.status is None or 100 <= parsed.status <= 599


_VERDICT = st.fixed_dictionaries(
    {},
    optional={
        "time": st.just(NOW.isoformat()) | _JSON,
        "tags": st.lists(st.sampled_from(["prompt-injection", "pii"]), max_size=3) | _JSON,
    },
)


@SETTINGS
@given(records=st.lists(_VERDICT, max_size=10))
def test_verdict_lines_count_good_and_bad_never_raise(
    hostile: Examples, records: list[dict[str, object]]
) -> None:
    hostile.tick(len(records))
    lines = [json.dumps(r) for r in records]
    counts, bad = count_tags(lines, {"prompt-injection"}, NOW - timedelta(minutes=1))
    good = [tags for r in records if r.get("time") == NOW.isoformat() and (tags := _tags(r))]
    assert counts["prompt-injection"] == sum("prompt-injection" in t for t in good)
    assert bad <= len(lines) - len(good)


def _tags(record: dict[str, object]) -> list[str] | None:
    tags = record.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        return [str(t) for t in tags]
    return None
