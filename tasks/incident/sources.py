"""The tasks of ``sbx incident blast-radius``: one per source, the saved report, its artifacts.

Every scan observes live files or services, so none is cached; a source that cannot be read
(Docker down, Qdrant stopped by ``freeze``) comes back with its ``error`` said, never raised:
the other sources still answer, and the report shows what it could not see.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import SbxError
from tasks.incident.keys import names_by_fingerprint, write_atomic
from tasks.incident.radius import (
    AgentScan,
    BlastRadiusReport,
    CollectionUse,
    ProxyScan,
    QdrantScan,
    SourceScan,
    allowlists,
    scan_agents,
    scan_proxy,
    scan_qdrant_log,
)
from tasks.incident.record import incident_dir
from tasks.incident.redact import key_rule
from tasks.reports import artifact_key

log = logging.getLogger("sbx.incident")
REPORT_FILE = "blast-radius.json"


@task(name="scan-proxy-access", cache_policy=NO_CACHE)
def scan_proxy_access(config: SbxConfig, since: datetime, until: datetime | None) -> ProxyScan:
    """Which API keys were used, from which addresses, for which paths (proxy access logs)."""
    inc = config.incident
    names = names_by_fingerprint(config.stack_dir / inc.keys_file)
    return scan_proxy(
        config.stack_dir, inc.proxy_access_logs, since, until, inc.known_networks, names,
        key_rule(config),
    )  # fmt: skip


@task(name="scan-agent-fetches", cache_policy=NO_CACHE)
def scan_agent_fetches(config: SbxConfig, since: datetime, until: datetime | None) -> AgentScan:
    """URLs the agents fetched from hosts off their allowlists, and refused attempts."""
    inc = config.incident
    lists = allowlists(config.stack_dir, inc.agent_allowlists)
    return scan_agents(
        config.stack_dir, inc.agent_fetch_logs, since, until, lists, key_rule(config)
    )


@task(name="scan-qdrant-access", cache_policy=NO_CACHE)
def scan_qdrant_access(config: SbxConfig, since: datetime, until: datetime | None) -> QdrantScan:
    """Collections read or written (the qdrant container's request lines) and what the API
    holds now (collections and point counts)."""
    from tasks.status import read_stack_status

    try:
        status = read_stack_status(config)
    except SbxError as exc:
        failed = [SourceScan(source=s, error=str(exc)) for s in ("qdrant-log", "qdrant-api")]
        return QdrantScan(collections=[], scans=failed)
    qdrant = next((s for s in status.services if s.kind == ServiceKind.QDRANT.value), None)
    uses: dict[str, CollectionUse] = {}
    if qdrant is None or qdrant.container is None:
        log_scan = SourceScan(source="qdrant-log", error="no qdrant container in the project")
    else:
        from tasks.clients.docker_engine import connect

        try:
            with connect() as engine:
                text = engine.logs(qdrant.container, since=since)
            uses, log_scan = scan_qdrant_log(text, since, until)
            log_scan = log_scan.model_copy(update={"files": [f"docker logs {qdrant.container}"]})
        except SbxError as exc:
            log_scan = SourceScan(source="qdrant-log", error=str(exc))
    api_scan = SourceScan(source="qdrant-api", error="qdrant is not running")
    if qdrant is not None and qdrant.url and qdrant.state == "running":
        from tasks.clients.qdrant import connect as connect_qdrant  # ~1.5 s import

        try:
            key = qdrant.credentials.for_reading  # a scan only reads
            with connect_qdrant(qdrant.url, timeout_s=30, api_key=key) as client:
                for name in client.collections():
                    use = uses.get(name) or CollectionUse(name=name)
                    uses[name] = use.model_copy(update={"points": client.point_count(name)})
            api_scan = SourceScan(source="qdrant-api", files=[qdrant.url])
        except SbxError as exc:
            api_scan = SourceScan(source="qdrant-api", error=str(exc))
    collections = sorted(uses.values(), key=lambda u: u.name)
    return QdrantScan(collections=collections, scans=[log_scan, api_scan])


@task(name="save-blast-radius", cache_policy=NO_CACHE)
def save_blast_radius(report: BlastRadiusReport) -> Path:
    """``.sbx/incidents/<id>/blast-radius.json`` (replaced atomically; the last one counts)."""
    path = incident_dir(report.stack_dir, report.incident_id) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, report.model_dump_json(indent=2) + "\n")
    return path


def load_blast_radius(stack_dir: Path, incident_id: str) -> BlastRadiusReport | None:
    path = incident_dir(stack_dir, incident_id) / REPORT_FILE
    if not path.is_file():
        return None
    return BlastRadiusReport.model_validate_json(path.read_bytes())


@task(name="publish-blast-radius", cache_policy=NO_CACHE)
def publish_blast_radius(report: BlastRadiusReport) -> None:
    """Table artifacts: keys, agent fetches, collections (keyed per stack: history kept)."""
    stack = report.stack_dir.name
    window = f"since {report.since:%Y-%m-%d %H:%M} UTC, incident {report.incident_id}"
    keys = [
        {
            "flagged": "FLAGGED" if k.flagged else "",
            "key": k.name or "(not in keys file)",
            "fingerprint": k.fingerprint,
            "requests": k.requests,
            "refused": k.refused,
            "outside addresses": ", ".join(k.outside_addresses) or "-",
            "addresses": ", ".join(k.addresses),
            "paths": ", ".join(k.paths[:10]),
            "first seen": k.first_seen.isoformat(),
            "last seen": k.last_seen.isoformat(),
        }
        for k in report.api_keys
    ]
    create_table_artifact(
        keys or [{"key": "no key was used in the window"}],
        key=artifact_key("blast-radius", stack, "keys"),
        description=f"API keys used ({window})",
    )
    fetches = [
        {"kind": kind, "agent": f.agent, "host": f.host, "url": f.url, "time": f.time.isoformat()}
        for kind, found in (("off-list fetch", report.off_list), ("refused", report.attempts))
        for f in found
    ]
    create_table_artifact(
        fetches or [{"kind": f"no off-list fetch ({report.fetched} fetches read)"}],
        key=artifact_key("blast-radius", stack, "fetches"),
        description=f"Agent fetches off their allowlists, and refused attempts ({window})",
    )
    create_table_artifact(
        [c.model_dump(mode="json") for c in report.collections] or [{"name": "no collection seen"}],
        key=artifact_key("blast-radius", stack, "collections"),
        description=f"Qdrant collections read or written, points now ({window})",
    )
