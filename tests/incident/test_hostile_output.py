"""What came from a log or a container is shown as data (#23 findings 6 and 9): no terminal
escape reaches the terminal, no markdown or HTML reaches report.md, and a bad --out is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sbx.cli.incident.radius import _print_report
from sbx.cli.options import err, out
from tasks.incident.radius import BlastRadiusReport, FetchFinding, KeyUse, SourceScan
from tasks.incident.record import IncidentAction, IncidentInfo, open_or_current
from tasks.incident.report import BlastRadius, FlowRunsRead, build_report, render_markdown
from tasks.incident.text import md, plain

WHEN = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)
ERASE = "\x1b[1A\x1b[2K"  # cursor up, erase the line: would hide the FLAGGED row
SVG = "<svg/onload=alert(1)>"
INJECTED = "x\n## Injected heading\n| 1 | forged | row |"


def test_plain_and_md_make_text_inert() -> None:
    assert plain("a\x1b[2Kb\r\n\x07\x9b") == "a\\x1B[2Kb\\x0D\\x0A\\x07\\x9B"
    assert md(SVG) == "&lt;svg/onload=alert(1)&gt;"
    assert md("[a](http://x) `c` | *b*") == "\\[a\\](http://x) \\`c\\` \\| \\*b\\*"
    assert "\n" not in md(INJECTED)


def test_report_md_holds_no_html_no_heading_and_no_row_from_a_log() -> None:
    info = IncidentInfo(id="x", opened_at=WHEN, opened_by="freeze")
    hostile = IncidentAction(at=WHEN, step="contain", summary=INJECTED + SVG + ERASE, ok=True)
    radius = BlastRadius(flagged_keys=["sha256:3f1c0a9e5b7d2c48", "`" + SVG],
                         off_list_urls=[f"http://exfil.test/{SVG}\n## Owned"])  # fmt: skip
    markdown = render_markdown(
        build_report(info, [hostile], [], FlowRunsRead(available=True), radius)
    )
    assert "<svg" not in markdown and "\x1b" not in markdown
    lines = markdown.splitlines()
    assert not any(line.startswith(("## Injected", "## Owned", "| 1 | forged")) for line in lines)
    assert "`sha256:3f1c0a9e5b7d2c48`" in markdown  # a real fingerprint stays code


def _report() -> BlastRadiusReport:
    key = KeyUse(
        fingerprint="sha256:3f1c0a9e5b7d2c48", name="ops" + ERASE, requests=1, refused=0,
        addresses=["198.51.100.66"], outside_addresses=["198.51.100.66"], paths=["/v1/x"],
        paths_total=1, first_seen=WHEN, last_seen=WHEN, flagged=True,
    )  # fmt: skip
    fetch = FetchFinding(time=WHEN, agent="a" + ERASE, url="http://x.example/" + ERASE,
                         host="x.example", status=200)  # fmt: skip
    return BlastRadiusReport(
        incident_id="x", stack_dir=Path("/s"), since=WHEN, until=None, generated_at=WHEN,
        api_keys=[key], requests_without_key=0, fetched=1, off_list=[fetch], attempts=[fetch],
        collections=[], sources=[SourceScan(source="proxy-access", error="bad" + ERASE)],
    )  # fmt: skip


def test_blast_radius_table_sends_no_escape_sequence_to_the_terminal() -> None:
    with out.capture() as shown, err.capture() as said:
        _print_report(_report())
    text = shown.get() + said.get()
    assert "FLAGGED" in text
    assert "\x1b" not in text and "\\x1B[1A" in text


def test_report_out_a_directory_is_refused_with_one_line(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    open_or_current(stack, "freeze")
    target = tmp_path / "reports"
    target.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "incident", "report", "--stack", str(stack),
         "--out", str(target)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and "is a directory" in done.stderr, done.stderr
    assert list(tmp_path.glob("*.sbx-tmp")) == [] and list(target.iterdir()) == []
