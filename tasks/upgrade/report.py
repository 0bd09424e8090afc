"""The operator's view of one upgrade or rollback: a markdown artifact built from its journal entry.

The journal (tasks/upgrade/journal.py) is the record; this only renders the closed entry — what ran
before, what was asked for, how the gate ended — so the Prefect UI shows the outcome of every
upgrade, rollback and reconcile without opening ``journal.jsonl``.
"""

from __future__ import annotations

from tasks.upgrade.journal import JournalEntry

OUTCOME = {
    "committed": "committed: the new release passed the gate",
    "rolled-back": "rolled back to the recorded release",
    "rollback-failed": "ROLLBACK FAILED: the recorded release did not pass the gate either",
    "aborted": "aborted before anything was switched",
    "open": "still open",
}


def _short(digest: str | None) -> str:
    if not digest:
        return "—"
    repo, _, value = digest.partition("@")
    return f"{repo}@{value[:19]}" if value else digest


def upgrade_markdown(entry: JournalEntry) -> str:
    """Markdown for a closed (or still open) journal entry."""
    lines = [
        f"# sbx {entry.action} {entry.id}: {entry.state}",
        "",
        f"- outcome: {OUTCOME.get(entry.state, entry.state)}",
        f"- services: {', '.join(entry.services) or '—'}",
        f"- started: {entry.started_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", ended {entry.ended_at:%H:%M:%S} UTC" if entry.ended_at else ""),
    ]
    if entry.gate:
        lines.append(f"- gate that failed: `{entry.gate}`")
    if entry.detail:
        lines.append(f"- detail: {entry.detail}")
    if entry.data_snapshot:
        lines.append(
            f"- pre-upgrade snapshot: `{entry.data_snapshot}` ({', '.join(entry.data_parts)})"
        )
    if entry.data:
        lines.append(f"- data: {entry.data}")
    lines += ["", "| service | before | target |", "|---|---|---|"]
    for service in sorted(set(entry.before.images) | set(entry.target)):
        before = entry.before.images.get(service)
        target = entry.target.get(service)
        lines.append(
            f"| {service} | `{_short(before.digest if before else None)}` "
            f"| `{_short(target.digest if target else None)}` |"
        )
    return "\n".join(lines) + "\n"
