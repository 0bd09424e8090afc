"""Blast-radius parsing and scanning over log lines written in the issue #7 spec's formats."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blocks.incident_config import IncidentConfig
from incident.radius_seed import (
    ALLOWED_URL,
    KEYS,
    OFF_LIST_URL,
    REFUSED_URL,
    combined,
    qdrant_line,
    seed_files,
)  # fmt: skip
from sbx.errors import ConfigError
from tasks.incident.keys import key_fingerprint
from tasks.incident.logs import (
    host_allowed,
    log_files,
    parse_access_line,
    parse_fetch_line,
    parse_when,
    parse_window,
    read_lines,
)
from tasks.incident.qdrant_log import parse_qdrant_line
from tasks.incident.radius import allowlists, is_known, scan_agents, scan_proxy, scan_qdrant_lines

NOW = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)
KNOWN = IncidentConfig().known_networks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1d", NOW - timedelta(days=1)),
        ("2026-11-27T01:00:00Z", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-27T03:00:00+02:00", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-27 01:00", datetime(2026, 11, 27, 1, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_relative_and_utc(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


def test_an_unreadable_time_or_an_empty_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_when("yesterday")
    assert parse_window("2h", "1h", NOW) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    with pytest.raises(ConfigError, match="is not after --since"):
        parse_window("1h", "2h", NOW)


def test_combined_and_json_access_lines_parse_to_the_same_request() -> None:
    fp = key_fingerprint("k")
    text = combined("203.0.113.77", fp, NOW, "GET", "/v1/models?key=secret", 401)
    line = parse_access_line(text)
    assert line is not None
    assert (line.addr, line.key_fp, line.method, line.path, line.status, line.time) == (
        "203.0.113.77", fp, "GET", "/v1/models", 401, NOW,
    )  # fmt: skip
    as_json = parse_access_line(
        '{"time": "2026-11-27T03:15:00+00:00", "remote_addr": "203.0.113.77", "key_fp": "'
        + fp
        + '", "method": "GET", "path": "/v1/models?key=secret", "status": 401, "bytes": 0, '
        '"user_agent": "x"}'
    )
    assert as_json == line
    assert parse_access_line(combined("10.0.0.1", None, NOW, "GET", "/health", 200)).key_fp is None  # type: ignore[union-attr]
    for bad in ("", "garbage", '{"time": "x"}', '1.2.3.4 - - [27/Nov/2026:99:00:00 +0000] "GET'):
        assert parse_access_line(bad) is None


def test_fetch_and_qdrant_lines() -> None:
    record = parse_fetch_line(
        '{"time": "2026-11-27T03:15:00+00:00", "url": "http://A.example/x", "allowed": false, '
        '"fetched": true, "status": 200}',
        "internet-research",
    )
    assert record is not None
    assert (record.agent, record.host, record.allowed, record.fetched) == (
        "internet-research", "a.example", False, True,
    )  # fmt: skip
    assert parse_fetch_line("{not json", "a") is None
    stamped = parse_qdrant_line(
        "2026-11-27T03:15:00.123456789Z "
        + qdrant_line(NOW, "PUT", "/collections/notes/points?wait=true")
    )
    assert stamped is not None
    assert (stamped.collection, stamped.writes, stamped.time) == ("notes", True, NOW)
    plain = parse_qdrant_line(qdrant_line(NOW, "POST", "/collections/notes/points/scroll"))
    assert plain is not None and (plain.collection, plain.writes) == ("notes", False)
    assert parse_qdrant_line("2026-11-27T03:15:00Z Qdrant stand-in listening on :6333") is None


def test_allowlist_domains_allow_their_subdomains() -> None:
    allow = ["en.wikipedia.org", "*.arxiv.org"]
    assert host_allowed("en.wikipedia.org", allow)
    assert host_allowed("export.arxiv.org", allow)
    assert host_allowed("arxiv.org", allow)
    assert not host_allowed("wikipedia.org", allow)
    assert not host_allowed("exfil.attacker.test", allow)
    assert not host_allowed("evilarxiv.org", allow)


def test_known_networks() -> None:
    from tasks.incident.radius import _networks

    nets = _networks(KNOWN)
    assert is_known("172.18.0.1", nets) and is_known("::1", nets) and is_known("10.1.2.3", nets)
    assert is_known("::ffff:192.168.1.2", nets)
    assert not is_known("203.0.113.77", nets) and not is_known("not-an-ip", nets)


def test_rotated_and_gzipped_files_are_read_oldest_first(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("c\n")
    (logs / "access.log.1").write_text("b\n")
    with gzip.open(logs / "access.log.2.gz", "wt") as handle:
        handle.write("a\n")
    files = log_files(tmp_path, ["logs/access.log*"])
    assert [p.name for p in files] == ["access.log.2.gz", "access.log.1", "access.log"]
    assert [line for p in files for line in read_lines(p)] == ["a\n", "b\n", "c\n"]


def test_seeded_compromise_flags_exactly_the_leaked_key_and_the_off_list_url(
    tmp_path: Path,
) -> None:
    seeded = seed_files(tmp_path)
    inc = IncidentConfig()
    names = {key_fingerprint(v): n for n, v in KEYS.items() if n != "webui"}  # webui: revoked
    proxy = scan_proxy(tmp_path, inc.proxy_access_logs, seeded.since, None, KNOWN, names)
    assert [k.fingerprint for k in proxy.api_keys if k.flagged] == [seeded.leaked_fp]
    leaked = next(k for k in proxy.api_keys if k.flagged)
    assert leaked.name == "agent"
    assert leaked.outside_addresses == [seeded.outside_addr]
    assert leaked.requests == 3
    assert leaked.paths == ["/v1/chat/completions", "/v1/models"]
    assert {k.name for k in proxy.api_keys} == {"agent", "ops", None}  # webui's name is gone
    assert proxy.without_key == 1
    assert proxy.scan.unparsed == 2  # the line in neither format, the line cut by rotation
    assert proxy.scan.before_since == 1  # ops from outside, but before --since: not flagged
    assert proxy.scan.files == ["logs/proxy/access.log.2.gz", "logs/proxy/access.log.1",
                                "logs/proxy/access.log"]  # fmt: skip

    lists = allowlists(tmp_path, inc.agent_allowlists)
    agents = scan_agents(tmp_path, inc.agent_fetch_logs, seeded.since, None, lists)
    assert [f.url for f in agents.off_list] == [OFF_LIST_URL]
    assert [f.url for f in agents.attempts] == [REFUSED_URL]
    assert agents.fetched == 2  # the allowlisted one and the off-list one
    assert ALLOWED_URL not in {f.url for f in agents.off_list}
    assert agents.scan.unparsed == 1 and agents.scan.before_since == 1

    until = seeded.since + timedelta(minutes=6)  # --until cuts off the later requests
    early = scan_proxy(tmp_path, inc.proxy_access_logs, seeded.since, until, KNOWN, names)
    assert not [k for k in early.api_keys if k.flagged]


def test_qdrant_lines_count_reads_and_writes() -> None:
    since = NOW - timedelta(hours=1)
    lines = [
        qdrant_line(datetime(2026, 11, 27, 1, 0, tzinfo=UTC), "GET", "/collections/old"),
        qdrant_line(datetime(2026, 11, 27, 2, 30, tzinfo=UTC), "GET", "/collections"),
        qdrant_line(
            datetime(2026, 11, 27, 2, 31, tzinfo=UTC), "POST", "/collections/notes/points/search"
        ),
        qdrant_line(
            datetime(2026, 11, 27, 2, 32, tzinfo=UTC), "POST", "/collections/notes/points/delete"
        ),
        "2026-11-27T02:33:00.000000001Z Qdrant stand-in listening",
    ]
    uses, scan = scan_qdrant_lines(lines, since, None)
    assert set(uses) == {"notes"}
    assert (uses["notes"].reads, uses["notes"].writes) == (1, 1)
    assert (scan.before_since, scan.unparsed, scan.in_window) == (1, 1, 3)


def test_saved_report_carries_what_report_and_contain_read(tmp_path: Path) -> None:
    from tasks.incident.radius import BlastRadiusReport

    seeded = seed_files(tmp_path)
    inc = IncidentConfig()
    proxy = scan_proxy(tmp_path, inc.proxy_access_logs, seeded.since, None, KNOWN, {})
    lists = allowlists(tmp_path, inc.agent_allowlists)
    agents = scan_agents(tmp_path, inc.agent_fetch_logs, seeded.since, None, lists)
    report = BlastRadiusReport(
        incident_id="x", stack_dir=tmp_path, since=seeded.since, until=None, generated_at=NOW,
        api_keys=proxy.api_keys, requests_without_key=0, fetched=agents.fetched,
        off_list=agents.off_list, attempts=agents.attempts, collections=[], sources=[],
    )  # fmt: skip
    saved = report.model_dump(mode="json")
    assert saved["flagged_keys"] == [{"name": None, "fingerprint": seeded.leaked_fp}]
    assert saved["off_list_urls"] == [OFF_LIST_URL]
    assert saved["flagged_domains"] == ["exfil.attacker.test"]
    assert BlastRadiusReport.model_validate_json(report.model_dump_json()) == report
