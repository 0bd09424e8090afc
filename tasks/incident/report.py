"""The incident report: what ``sbx incident report`` writes, built from what the steps recorded.

Pure functions only (the sources are read by ``tasks/incident/history.py``): :func:`build_report`
merges the incident's actions, the change-log entries and the Prefect flow runs since it opened
into one timeline, picks the evidence bundles, the blast-radius findings and the open items;
:func:`render_markdown` writes it for the operator.

What is read from other steps' ``details`` (the contract, docs/incident.md "Report inputs"):

    preserve      bundle (path, relative to the stack), bundle_hash ("sha256:<hex>")
    freeze        stopped (services)         unfreeze: started (services)
    blast-radius  flagged_keys (fingerprints), off_list_urls (URLs)
    contain       revoked (fingerprints), blocked_domains, recreated (services)
    recover       restored (snapshot id), health_failing (check ids), suite_failed (prompts)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from tasks.changelog import ChangeEntry, short_value
from tasks.incident.record import IncidentAction, IncidentInfo
from tasks.incident.text import md

_DIGEST = re.compile(r"sha256:[0-9a-f]{16,64}")

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FlowRunLine(_Frozen):
    id: str
    name: str  # the run's name
    flow: str  # the flow's name
    state: str
    start: datetime | None
    end: datetime | None


class FlowRunsRead(_Frozen):
    """The flow runs since the incident opened, or why they could not be read."""

    available: bool
    runs: list[FlowRunLine] = []
    error: str | None = None


class BlastRadius(_Frozen):
    flagged_keys: list[str] = []
    off_list_urls: list[str] = []


class TimelineItem(_Frozen):
    at: datetime
    source: Literal["action", "change", "flow run"]
    text: str


class Evidence(_Frozen):
    bundle: str
    bundle_hash: str
    at: datetime


class IncidentReport(_Frozen):
    schema_version: int = SCHEMA_VERSION
    incident: IncidentInfo
    timeline: list[TimelineItem]
    actions: list[IncidentAction]
    evidence: list[Evidence]
    blast_radius: BlastRadius | None
    flow_runs: FlowRunsRead
    open_items: list[str]


def _strings(value: Any, *keys: str) -> list[str]:
    """A list of strings from ``value``: strings as they are, objects by the first key found."""
    found = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            hit = next((item[k] for k in keys if isinstance(item.get(k), str)), None)
            if hit is not None:
                found.append(hit)
    return found


def parse_blast_radius(data: Any) -> BlastRadius:
    """``blast-radius.json``: fingerprints and URLs, as strings or as objects naming them."""
    data = data if isinstance(data, dict) else {}
    return BlastRadius(
        flagged_keys=_strings(data.get("flagged_keys"), "fingerprint", "key_fp", "fp"),
        off_list_urls=_strings(data.get("off_list_urls"), "url"),
    )


def _change_text(entry: ChangeEntry) -> str:
    return (
        f"{entry.action} {entry.target}: {short_value(entry.before)} → {short_value(entry.after)}"
    )


def _run_text(run: FlowRunLine) -> str:
    end = f", ended {run.end:%H:%M:%S}" if run.end else ""
    return f"{run.flow} / {run.name}: {run.state}{end}"


def timeline(
    actions: list[IncidentAction], changes: list[ChangeEntry], runs: list[FlowRunLine]
) -> list[TimelineItem]:
    """Every source in one list by time.

    The change log keeps whole seconds: a change is placed at the start of its second, or at
    the start of the flow run that made it when that is later (never before its own run). On
    equal times a run comes first (it starts before what it does), then changes, then actions
    (a step records what it did after doing it); the sort is stable, so record order stays.
    """
    started = {r.id: r.start for r in runs if r.start}
    items = [
        TimelineItem(
            at=a.at,
            source="action",
            text=f"{a.step}: {a.summary}" + ("" if a.ok else " (FAILED)"),
        )
        for a in actions
    ]
    for c in changes:
        at = datetime.fromisoformat(c.time)
        run_start = started.get(c.flow_run_id or "")
        if run_start is not None and at <= run_start < at + timedelta(seconds=1):
            at = run_start
        items.append(TimelineItem(at=at, source="change", text=_change_text(c)))
    items += [
        TimelineItem(at=r.start, source="flow run", text=_run_text(r)) for r in runs if r.start
    ]
    order = {"flow run": 0, "change": 1, "action": 2}
    return sorted(items, key=lambda i: (i.at, order[i.source]))


def evidence(actions: list[IncidentAction]) -> list[Evidence]:
    found = []
    for a in actions:
        bundle, digest = a.details.get("bundle"), a.details.get("bundle_hash")
        if a.step == "preserve" and a.ok and bundle and digest:
            found.append(Evidence(bundle=str(bundle), bundle_hash=str(digest), at=a.at))
    return found


def _collected(actions: list[IncidentAction], step: str, key: str, *keys: str) -> set[str]:
    return {
        value
        for a in actions
        if a.step == step and a.ok
        for value in _strings(a.details.get(key), *keys)
    }


def _still_frozen(actions: list[IncidentAction]) -> list[str]:
    stopped: set[str] = set()
    for a in actions:  # in record order: an unfreeze after a freeze clears it
        if not a.ok:
            continue
        if a.step == "freeze":
            stopped |= set(_strings(a.details.get("stopped"), "service"))
        elif a.step == "unfreeze":
            started = _strings(a.details.get("started"), "service")
            stopped = stopped - set(started) if started else set()
    return sorted(stopped)


def _domain_blocked(host: str, blocked: set[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in blocked)


def open_items(
    info: IncidentInfo, actions: list[IncidentAction], radius: BlastRadius | None
) -> list[str]:
    """What still needs a person before the incident can be called over."""
    items = []
    frozen = _still_frozen(actions)
    if frozen:
        items.append(
            f"still frozen ({', '.join(frozen)} stopped): unfreeze when safe "
            "('sbx incident unfreeze --yes')"
        )
    if not evidence(actions):
        items.append("no evidence preserved: run 'sbx incident preserve' before more restarts")
    flagged = set(radius.flagged_keys if radius else [])
    flagged |= _collected(actions, "blast-radius", "flagged_keys", "fingerprint", "key_fp")
    revoked = _collected(actions, "contain", "revoked", "fingerprint", "key_fp")
    if flagged - revoked:
        items.append(
            f"keys flagged but not revoked: {', '.join(sorted(flagged - revoked))} "
            "('sbx incident contain')"
        )
    urls = set(radius.off_list_urls if radius else [])
    urls |= _collected(actions, "blast-radius", "off_list_urls", "url")
    blocked = _collected(actions, "contain", "blocked_domains", "domain")
    recreated = _collected(actions, "contain", "recreated", "service")
    unhandled = sorted(u for u in urls if not _domain_blocked(urlsplit(u).hostname or u, blocked))
    if unhandled and not recreated:
        items.append(
            f"off-list URLs fetched ({', '.join(unhandled)}): an agent ignored its allowlist; "
            "recreate it from a clean digest ('sbx incident contain --recreate SERVICE')"
        )
    items += _contain_undone(actions)
    recovers = [a for a in actions if a.step == "recover"]
    last_run = recovers[-1].flow_run_id if recovers else None
    last = [a for a in recovers if a.flow_run_id == last_run] if last_run else recovers[-1:]
    if not recovers:
        items.append("no recovery check run: 'sbx incident recover' (health + prompt suite)")
    items += [f"last recovery failed: {a.summary}" for a in last if not a.ok]
    if info.closed_at is None:
        items.append("incident still open: close it with 'sbx incident report --close'")
    return items


def _contain_undone(actions: list[IncidentAction]) -> list[str]:
    """A snapshot restored after contain may hold the revoked keys / blocked domains again: the
    configs part keeps proxy/ (the keys file) and agent-configs the allowlists."""
    contained = False
    for a in actions:
        if a.ok and a.step == "contain" and (a.details.get("revoked") or
                                             a.details.get("blocked_domains")):  # fmt: skip
            contained = True
        elif a.ok and a.step == "recover" and a.details.get("restored") and contained:
            return [
                f"snapshot {a.details['restored']} was restored after keys or domains were "
                "contained: it may bring back revoked keys (proxy/keys.txt) or allowlisted "
                "domains; run 'sbx incident contain' again with the same keys and domains"
            ]
    return []


def build_report(
    info: IncidentInfo,
    actions: list[IncidentAction],
    changes: list[ChangeEntry],
    runs: FlowRunsRead,
    radius: BlastRadius | None,
) -> IncidentReport:
    return IncidentReport(
        incident=info,
        timeline=timeline(actions, changes, runs.runs),
        actions=actions,
        evidence=evidence(actions),
        blast_radius=radius,
        flow_runs=runs,
        open_items=open_items(info, actions, radius),
    )


def _cell(text: object) -> str:
    return md(text)


def _code(text: str) -> str:
    """A fingerprint as code; anything else (a forged value in a saved report) as inert text."""
    return f"`{text}`" if _DIGEST.fullmatch(text) else md(text)


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "-"


def render_markdown(report: IncidentReport) -> str:
    info = report.incident
    closed = _when(info.closed_at) + " UTC" if info.closed_at else "not closed"
    lines = [
        f"# Incident {md(info.id)}",
        "",
        f"- opened: {_when(info.opened_at)} UTC (by {md(info.opened_by)})",
        f"- closed: {closed}",
        "",
        "## Timeline",
        "",
    ]
    if not report.flow_runs.available:
        lines += [f"Prefect flow runs could not be read: {md(report.flow_runs.error)}", ""]
    lines += ["| time (UTC) | source | what |", "|---|---|---|"]
    lines += [f"| {_when(i.at)} | {md(i.source)} | {_cell(i.text)} |" for i in report.timeline]
    lines += ["", "## Actions taken", ""]
    if report.actions:
        lines += ["| # | time (UTC) | step | ok | summary | flow run |", "|---" * 6 + "|"]
        lines += [
            f"| {n} | {_when(a.at)} | {md(a.step)} | {'yes' if a.ok else 'NO'} "
            f"| {_cell(a.summary)} | {md(a.flow_run_id or '-')} |"
            for n, a in enumerate(report.actions, start=1)
        ]
    else:
        lines.append("None recorded.")
    lines += ["", "## Evidence", ""]
    if report.evidence:
        lines += ["| bundle | hash | preserved (UTC) |", "|---|---|---|"]
        lines += [
            f"| {md(e.bundle)} | {_code(e.bundle_hash)} | {_when(e.at)} |" for e in report.evidence
        ]
    else:
        lines.append("No evidence bundle was preserved.")
    lines += ["", "## Blast radius", ""]
    radius = report.blast_radius
    if radius is None:
        lines.append("No blast-radius.json in the incident folder ('sbx incident blast-radius').")
    else:
        keys = ", ".join(_code(k) for k in radius.flagged_keys) or "none"
        urls = ", ".join(md(u) for u in radius.off_list_urls) or "none"
        lines += [f"- flagged keys (fingerprints): {keys}", f"- off-list URLs: {urls}"]
    lines += ["", "## Open items", ""]
    lines += [f"- {md(item)}" for item in report.open_items] or ["None."]
    return "\n".join(lines) + "\n"
