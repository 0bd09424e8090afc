"""`sbx incident report`: one timeline of actions, changes and flow runs; evidence; open items."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import flow

from flows.changelog import show_changelog
from flows.incident.report import incident_report
from sbx.errors import ConfigError
from tasks.changelog import append_change
from tasks.incident.history import read_flow_runs
from tasks.incident.record import (
    IncidentAction,
    IncidentInfo,
    incident_dir,
    open_or_current,
    read_actions,
    read_incident,
    record_action,
)
from tasks.incident.report import (
    BlastRadius,
    FlowRunsRead,
    build_report,
    open_items,
    parse_blast_radius,
    render_markdown,
)

LEAKED = "sha256:0123456789abcdef"
OTHER = "sha256:fedcba9876543210"
BUNDLE_HASH = "sha256:" + "ab" * 32
WHEN = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)


@flow(name="test-incident-preserve")
def preserve_in_a_flow_run(stack: str, incident_id: str) -> None:
    """Stands in for `sbx incident preserve`: one action and one change, inside a flow run."""
    bundle = f".sbx/incidents/{incident_id}/evidence/20261127T031600Z"
    append_change(Path(stack), action="incident-preserve", target="stack",
                  after={"bundle": bundle, "bundle_hash": BUNDLE_HASH})  # fmt: skip
    record_action(Path(stack), incident_id, "preserve", "evidence bundle written",
                  details={"bundle": bundle, "bundle_hash": BUNDLE_HASH})  # fmt: skip


def action(step: str, ok: bool = True, **details: object) -> IncidentAction:
    return IncidentAction(at=WHEN, step=step, summary=f"{step} done", ok=ok, details=details)


def test_open_items_follow_what_the_steps_recorded() -> None:
    info = IncidentInfo(id="x", opened_at=WHEN, opened_by="freeze")
    radius = parse_blast_radius(
        {"flagged_keys": [{"fingerprint": LEAKED, "name": "agent"}, OTHER],
         "off_list_urls": [{"url": "http://exfil.attacker.test/upload"}]}
    )  # fmt: skip
    assert radius == BlastRadius(
        flagged_keys=[LEAKED, OTHER], off_list_urls=["http://exfil.attacker.test/upload"]
    )
    items = open_items(info, [action("freeze", stopped=["proxy"])], radius)
    assert items[0].startswith("still frozen (proxy stopped)")
    assert any(i.startswith("no evidence preserved") for i in items)
    assert any(f"keys flagged but not revoked: {LEAKED}, {OTHER}" in i for i in items)
    assert any("http://exfil.attacker.test/upload" in i for i in items)
    assert any(i.startswith("no recovery check run") for i in items)
    assert items[-1].startswith("incident still open")

    done = [
        action("freeze", stopped=["proxy"]),
        action("preserve", bundle="b", bundle_hash=BUNDLE_HASH),
        action("contain", revoked=[LEAKED, OTHER], blocked_domains=["attacker.test"]),
        action("unfreeze", started=["proxy"]),
        action("recover", health_failing=[]),
    ]
    closed = info.model_copy(update={"closed_at": WHEN})
    assert open_items(closed, done, radius) == []
    failed = [*done, action("recover", ok=False)]
    assert open_items(closed, failed, radius) == ["last recovery failed: recover done"]
    restored_later = [*done, action("recover", restored="20261127T010000Z-abc")]
    [undone] = open_items(closed, restored_later, radius)
    assert undone.startswith("snapshot 20261127T010000Z-abc was restored after keys or domains")


def test_a_report_without_the_prefect_api_says_so(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        runs = read_flow_runs.fn(WHEN)
    assert not runs.available and runs.error and "Connect" in runs.error
    info = IncidentInfo(id="x", opened_at=WHEN, opened_by="freeze")
    markdown = render_markdown(build_report(info, [action("freeze")], [], runs, None))
    assert "Prefect flow runs could not be read: ConnectError" in markdown
    assert "| action | freeze: freeze done |" in markdown


def test_report_merges_actions_changes_and_flow_runs_in_order(
    prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    stack = tmp_path / "stack"
    stack.mkdir()
    info = open_or_current(stack, "freeze")
    # a step changes, logs the change, then records the action
    append_change(stack, action="incident-freeze", target="proxy", before="running",
                  after="stopped")  # fmt: skip
    record_action(stack, info.id, "freeze", "stopped proxy", details={"stopped": ["proxy"]})
    preserve_in_a_flow_run(str(stack), info.id)
    show_changelog(stack=str(stack))  # a real sbx flow run that records no action
    record_action(stack, info.id, "contain", "revoked agent", details={"revoked": [LEAKED]})
    (incident_dir(stack, info.id) / "blast-radius.json").write_text(
        json.dumps({"flagged_keys": [LEAKED, OTHER], "off_list_urls": ["http://exfil.test/x"]})
    )
    out = tmp_path / "out" / "report.md"

    report = incident_report(stack=str(stack), out=str(out), close=True)

    markdown = (incident_dir(stack, info.id) / "report.md").read_text()
    assert out.read_text() == markdown
    assert markdown.startswith(f"# Incident {info.id}\n")
    closed_at = read_incident(stack, info.id).closed_at
    assert closed_at is not None and report.incident.closed_at == closed_at
    assert f"- closed: {closed_at:%Y-%m-%d %H:%M:%S} UTC" in markdown
    timeline = markdown.split("## Timeline")[1].split("## Actions taken")[0]
    expected = [
        "| change | incident-freeze proxy: running → stopped |",
        "| action | freeze: stopped proxy |",
        "| flow run | test-incident-preserve / ",
        "| change | incident-preserve stack: ",
        "| action | preserve: evidence bundle written |",
        "| flow run | show-changelog / ",
        "| action | contain: revoked agent |",
        "| flow run | incident-report / ",
        "| change | incident-close incident ",
        "| action | report: incident closed |",
    ]
    positions = [timeline.find(text) for text in expected]
    assert -1 not in positions, [t for t, p in zip(expected, positions, strict=True) if p < 0]
    assert positions == sorted(positions), timeline
    assert "test-incident-preserve / " in timeline and ": Completed" in timeline
    assert ": Running |" in timeline  # the report's own run, still going
    taken = markdown.split("## Actions taken")[1].split("## Evidence")[0]
    steps = [line.split(" | ")[2] for line in taken.splitlines() if line.startswith("| ") and
             line.split(" | ")[0].strip("| ").isdigit()]  # fmt: skip
    assert steps == ["freeze", "preserve", "contain", "report"]
    assert [a.step for a in read_actions(stack, info.id)] == steps
    assert f"`{BUNDLE_HASH}`" in markdown.split("## Evidence")[1]
    assert f"`{LEAKED}`, `{OTHER}`" in markdown.split("## Blast radius")[1]
    opened = markdown.split("## Open items")[1]
    assert "still frozen (proxy stopped)" in opened
    assert f"keys flagged but not revoked: {OTHER} " in opened  # LEAKED was revoked
    assert "no evidence preserved" not in opened and "incident still open" not in opened

    key = f"incident-{info.id.lower()}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found and str(found[-1].data) == markdown

    # closed: a second report needs the id, and never opens a new incident
    with pytest.raises(ConfigError, match=f"pass --incident {info.id}"):
        incident_report(stack=str(stack))
    again = incident_report(stack=str(stack), incident_id=info.id)
    assert again.incident.closed_at == closed_at
    assert sorted(p.name for p in (stack / ".sbx" / "incidents").iterdir()) == [".lock", info.id]


def test_flow_runs_before_the_incident_or_of_other_stacks_are_left_out(
    prefect_server: str, tmp_path: Path
) -> None:
    ours, other = tmp_path / "ours", tmp_path / "other"
    ours.mkdir()
    other.mkdir()
    show_changelog(stack=str(ours))
    show_changelog(stack=str(other))
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert read_flow_runs(later, ours) == FlowRunsRead(available=True, runs=[])
    runs = read_flow_runs(later - timedelta(minutes=5), ours).runs
    [run] = [r for r in runs if r.flow == "show-changelog"]
    assert run.state == "Completed" and run.name.startswith("changelog-ours-")


def test_the_cli_prints_and_writes_the_report(prefect_server: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    stack = tmp_path / "stack"
    stack.mkdir()
    info = open_or_current(stack, "freeze")
    record_action(stack, info.id, "freeze", "stopped proxy", details={"stopped": ["proxy"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_server, COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "incident", "report", "--stack", str(stack),
         "--out", "copy.md"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Starting temporary server" not in done.stderr
    written = (incident_dir(stack, info.id) / "report.md").read_text()
    assert (tmp_path / "copy.md").read_text() == written
    assert done.stdout.strip() == written.strip()
    assert "open: still frozen (proxy stopped)" in done.stderr
    assert read_incident(stack, info.id).closed_at is None  # no --close
