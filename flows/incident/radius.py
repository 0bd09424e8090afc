"""Incident step 3, blast radius: which keys, addresses, URLs and collections were touched."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from tasks.incident.logs import parse_window
from tasks.incident.radius import BlastRadiusReport
from tasks.incident.record import open_or_current, record_action
from tasks.incident.sources import (
    publish_blast_radius,
    save_blast_radius,
    scan_agent_fetches,
    scan_proxy_access,
    scan_qdrant_access,
)
from tasks.incident.text import plain
from tasks.runners import stoppable_task_runner

STEP = "blast-radius"


@flow(
    name="incident-blast-radius",
    flow_run_name=lambda: run_name("incident-blast-radius"),
    task_runner=stoppable_task_runner(),  # read-only scans: a SIGTERM does not wait for them
)
def incident_blast_radius(
    since: str,
    until: str | None = None,
    incident: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> BlastRadiusReport:
    """Which API keys were used from where, which URLs the agents fetched off their allowlists,
    which Qdrant collections were read or written, since a time (ISO 8601 or '2h', '30m', '1d').

    Reads the proxy access logs (rotated and .gz ones too), the agents' fetch logs and Qdrant's
    request log and API; changes nothing. A key used from outside the known networks and a fetch
    of a host off the agent's allowlist are FLAGGED: 'sbx incident contain --from-blast-radius'
    revokes and blocks those. Findings are not a failure: the run fails only when it cannot work.
    Saved as .sbx/incidents/<id>/blast-radius.json and recorded in the incident's actions.
    """
    log = get_run_logger()
    config = flow_config(stack, config_file)
    now = datetime.now(UTC)
    start, end = parse_window(since, until, now)
    info = open_or_current(config.stack_dir, STEP, incident)
    proxy = scan_proxy_access.submit(config, start, end)
    agents = scan_agent_fetches.submit(config, start, end)
    qdrant = scan_qdrant_access.submit(config, start, end)
    p, a, q = proxy.result(), agents.result(), qdrant.result()
    report = BlastRadiusReport(
        incident_id=info.id, stack_dir=config.stack_dir, since=start, until=end,
        generated_at=now, api_keys=p.api_keys, requests_without_key=p.without_key,
        fetched=a.fetched, off_list=a.off_list, attempts=a.attempts, collections=q.collections,
        sources=[p.scan, a.scan, *q.scans],
    )  # fmt: skip
    path = save_blast_radius(report)
    publish_blast_radius(report)
    flagged = report.flagged_keys
    summary = (
        f"{len(report.api_keys)} key(s) used, {len(flagged)} flagged; {len(report.off_list)} "
        f"off-list fetch(es), {len(report.attempts)} refused; {len(report.collections)} "
        f"collection(s) seen, since {start:%Y-%m-%dT%H:%M:%SZ}"
    )
    record_action(
        config.stack_dir, info.id, STEP, summary,
        details={
            "report": str(path.relative_to(config.stack_dir)),
            "flagged_keys": [k.model_dump() for k in flagged],
            "off_list_urls": report.off_list_urls,
            "flagged_domains": report.flagged_domains,
            "unreadable_sources": [s.source for s in report.sources if s.error],
        },
    )  # fmt: skip
    for source in report.sources:
        if source.error:
            log.warning("%s could not be read: %s", source.source, plain(source.error))
    log.info("%s; saved as %s", summary, path)
    return report
