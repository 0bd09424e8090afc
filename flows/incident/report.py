"""Incident runbook, last step: write the incident report (and close the incident if asked)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.errors import ConfigError, ReportOutRefused
from tasks.changelog import append_change
from tasks.incident.history import changes_since, read_blast_radius, read_flow_runs
from tasks.incident.record import (
    IncidentInfo,
    close_incident,
    current_incident,
    incident_dir,
    list_incidents,
    read_actions,
    read_incident,
    record_action,
)
from tasks.incident.report import IncidentReport, build_report, render_markdown
from tasks.reports import artifact_key, publish_markdown

REPORT_FILE = "report.md"


def choose_incident(stack_dir: Path, incident_id: str | None) -> IncidentInfo:
    """The incident named, else the current (open) one; a report never opens a new one."""
    if incident_id is not None:
        return read_incident(stack_dir, incident_id)
    current = current_incident(stack_dir)
    if current is not None:
        return current
    known = list_incidents(stack_dir)
    hint = (
        f" The newest, {known[-1].id}, is closed: pass --incident {known[-1].id}." if known else ""
    )
    raise ConfigError(f"No open incident in {stack_dir}, so there is nothing to report.{hint}")


@flow(
    name="incident-report",
    flow_run_name=lambda: run_name("incident-report"),
    log_prints=False,
)
def incident_report(
    incident_id: str | None = None,
    out: str | None = None,
    close: bool = False,
    stack: str | None = None,
    config_file: str | None = None,
) -> IncidentReport:
    """Write the incident report: opened/closed times, one timeline of the incident's actions,
    the change log and the Prefect flow runs since it opened, the evidence bundles and their
    hashes, the blast-radius findings and the open items (still frozen, keys flagged but not
    revoked, no evidence, ...). Saved as .sbx/incidents/<id>/report.md (and ``out``) and
    published as a markdown artifact. ``close`` closes the incident first.
    """
    if out and Path(out).is_dir():
        raise ReportOutRefused(out)
    config = flow_config(stack, config_file)
    stack_dir = config.stack_dir
    info = choose_incident(stack_dir, incident_id)
    if close and info.closed_at is None:
        info = close_incident(stack_dir, info.id)
        append_change(stack_dir, action="incident-close", target=f"incident {info.id}",
                      before="open", after="closed")  # fmt: skip
        record_action(stack_dir, info.id, "report", "incident closed")
    runs = read_flow_runs(info.opened_at, stack_dir)  # this run too: it closes the incident
    report = build_report(
        info,
        read_actions(stack_dir, info.id),
        changes_since(stack_dir, info.opened_at),
        runs,
        read_blast_radius(stack_dir, info.id),
    )
    markdown = render_markdown(report)
    written = [incident_dir(stack_dir, info.id) / REPORT_FILE]
    if out:
        written.append(Path(out))
    for path in written:
        _write(path, markdown)
    publish_markdown(artifact_key("incident", info.id), markdown, f"Incident {info.id} report")
    log = get_run_logger()
    log.info("report of incident %s written to %s", info.id, ", ".join(map(str, written)))
    if not runs.available:
        log.warning("flow runs not read: %s", runs.error)
    return report


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".sbx-tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except IsADirectoryError:
        tmp.unlink(missing_ok=True)
        raise ReportOutRefused(str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
