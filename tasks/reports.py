"""Reports that flows return and publish as Prefect artifacts for the operator."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from sbx.repository import PruneReport, SnapshotManifest, Stats, VerifyReport
from tasks.backup.drift_rules import DriftChange
from tasks.units import human_bytes

MiB = 1 << 20


class PartSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    method: str
    mode: str  # how it was captured this time (e.g. snapshot-api vs stop-copy-start)
    status: str
    reason: str | None
    stats: Stats
    warnings: list[str]
    incomplete: list[str] = []
    #: what the compose model named for this part: kind, origin, from, stored_as, status
    sources: list[dict[str, object]] = []


#: how a warning is counted in the summary: the first kind whose words it contains
WARNING_KINDS = (
    ("vanished or was renamed while", "directories vanished mid-walk"),
    ("changed while being read", "files changed while read"),
    ("vanished or changed type", "files vanished"),
    (" skipped: ", "special files skipped"),
    ("sha256 differs", "model checksums differ"),
    ("repository is inside", "repository left out"),
)


def warning_kind(message: str) -> str:
    return next((kind for words, kind in WARNING_KINDS if words in message), "other")


def warning_counts(parts: list[PartSummary]) -> dict[str, int]:
    """How many warnings of each kind the parts recorded, most frequent first."""
    counts: dict[str, int] = {}
    for part in parts:
        for message in part.warnings:
            kind = warning_kind(message)
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


class BackupReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    repository: str
    stack_dir: Path
    project: str | None
    started_at: datetime
    stats: Stats
    parts: list[PartSummary]
    restarted: list[str]  # services a killed earlier run had left stopped
    docker: bool
    drift: list[DriftChange] = []  # config files changed outside sbx (tasks/backup/drift.py)

    @property
    def problems(self) -> list[str]:
        failed = [f"part {p.name} failed: {p.reason}" for p in self.parts if p.status == "failed"]
        checksum = [w for p in self.parts for w in p.warnings if "sha256 differs" in w]
        incomplete = [
            f"part {p.name} is incomplete ({', '.join(p.incomplete)} vanished or were renamed "
            "while read)"
            for p in self.parts
            if p.incomplete
        ]
        return failed + incomplete + checksum

    @classmethod
    def from_manifest(
        cls,
        manifest: SnapshotManifest,
        repository: str,
        project: str | None,
        restarted: list[str],
        docker: bool,
    ) -> BackupReport:
        parts = [
            PartSummary(
                name=p.name,
                method=p.method,
                mode=str(p.detail.get("mode", p.method)),
                status=p.status,
                reason=p.reason,
                stats=p.stats,
                warnings=p.warnings,
                incomplete=p.incomplete or [],
                sources=p.detail.get("sources", []),
            )
            for p in manifest.parts
        ]
        return cls(
            snapshot_id=manifest.id,
            repository=repository,
            stack_dir=Path(manifest.stack_dir),
            project=project,
            started_at=manifest.created_at,
            stats=manifest.stats,
            parts=parts,
            restarted=restarted,
            docker=docker,
        )


def backup_markdown(report: BackupReport) -> str:
    s = report.stats
    lines = [
        f"# Backup {report.snapshot_id}",
        "",
        f"Stack `{report.stack_dir}` → repository `{report.repository}`; "
        f"{s.files} files, {human_bytes(s.bytes)} ({human_bytes(s.new_bytes)} new, "
        f"{human_bytes(s.reused_bytes)} reused, {s.new_objects} new objects) in "
        f"{s.duration_s:.1f} s ({s.throughput_mib_s:.0f} MiB/s).",
        "",
        "| part | method used | status | files | bytes | new | reused | duration |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in report.parts:
        status = p.status if p.reason is None else f"{p.status}: {p.reason}"
        lines.append(
            f"| {p.name} | {p.mode} | {status} | {p.stats.files} | {human_bytes(p.stats.bytes)} "
            f"| {human_bytes(p.stats.new_bytes)} | {human_bytes(p.stats.reused_bytes)} "
            f"| {p.stats.duration_s:.1f} s |"
        )
    lines += sources_markdown(report.parts)
    if not report.docker:
        lines += [
            "",
            "Docker was not reachable: files were copied as they are, without "
            "quiescing any service.",
        ]
    if report.restarted:
        lines += [
            "",
            f"Restarted services a killed earlier run had left stopped: "
            f"{', '.join(report.restarted)}.",
        ]
    if report.drift:
        lines += ["", "## Config drift", "", f"{len(report.drift)} configuration file(s) changed "
                  "outside sbx since the previous snapshot (each is in the change log):", "",
                  *(f"- {d.describe()}" + (" **(alerted)**" if d.sensitive else "")
                    for d in report.drift)]  # fmt: skip
    # one line each: a file name may hold a newline
    warnings = [f"- {p.name}: {w}".replace("\n", "\\n") for p in report.parts for w in p.warnings]
    if warnings:
        counts = ", ".join(f"{n} {kind}" for kind, n in warning_counts(report.parts).items())
        lines += ["", "## Warnings", "", f"{len(warnings)} warnings: {counts}.", "", *warnings]
    return "\n".join(lines) + "\n"


def sources_markdown(parts: list[PartSummary]) -> list[str]:
    """The table of what the compose model names (bind mounts, volumes, compose files, .env,
    env files) and where each went: operators check here that nothing was left out."""
    rows = []
    for p in parts:
        for s in p.sources:
            part, stored = (p.name, f"`{s['stored_as']}`") if s["stored_as"] else ("—", "—")
            rows.append(
                f"| {s['kind']} | `{s['from']}` | {s['origin']} | {part} | {stored} "
                f"| {s['status']} |"
            )
    if not rows:
        return []
    head = "| kind | from | named by | part | stored as | status |"
    return ["", "## What the compose file names", "", head, "|---|---|---|---|---|---|", *rows]


def verify_markdown(report: VerifyReport) -> str:
    verdict = "passed" if report.ok else f"FAILED: {len(report.damaged)} damaged"
    lines = [
        f"# Verification {verdict}",
        "",
        f"{len(report.snapshots)} snapshot(s), {report.objects_checked} of "
        f"{report.objects_referenced} objects re-read ({human_bytes(report.bytes_checked)}), "
        f"{report.files_checked} files re-hashed in {report.duration_s:.1f} s"
        + (f" (sample {report.sample:.0%})" if report.sample else "")
        + ".",
    ]
    if report.damaged:
        lines += ["", "| snapshot | part | path | object | reason |", "|---|---|---|---|---|"]
        lines += [
            f"| {d.snapshot_id} | {d.part or ''} | {d.path or ''} | {(d.object or '')[:16]} "
            f"| {d.reason} |"
            for d in report.damaged[:200]
        ]
    if report.replaced_by_next_backup:
        lines += [
            "",
            "The next backup stores these damaged objects again (while their files are in the "
            "stack): " + ", ".join(f"`{o}`" for o in report.replaced_by_next_backup) + ".",
        ]
    return "\n".join(lines) + "\n"


def prune_markdown(report: PruneReport) -> str:
    title = "Prune (dry run)" if report.dry_run else "Prune"
    gc = report.gc
    lines = [
        f"# {title}: {len(report.removed)} snapshot(s) removed, {len(report.kept)} kept",
        "",
        f"{gc.objects_deleted} of {gc.objects_total} objects unreferenced, "
        f"{human_bytes(gc.bytes_freed + report.manifest_bytes_freed)} freed"
        + (" (would be)" if report.dry_run else "")
        + ".",
        "",
        *([f"**Objects not collected:** {gc.skipped}", ""] if gc.skipped else []),
        *(
            [f"**Left by S3 Object Lock:** {gc.objects_locked} unreferenced object(s).", ""]
            if gc.objects_locked
            else []
        ),
        "| snapshot | kept because |",
        "|---|---|",
        *(f"| {sid} | {', '.join(why)} |" for sid, why in sorted(report.kept.items())),
        *(f"| ~~{sid}~~ | removed |" for sid in report.removed),
        *(f"| {sid} | locked until {until:%Y-%m-%d} |" for sid, until in report.locked.items()),
    ]
    return "\n".join(lines) + "\n"


def artifact_key(*words: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    key = "-".join(words).lower()
    return re.sub(r"[^a-z0-9-]+", "-", key).strip("-")[:100]


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A keyed markdown artifact, so the Artifacts page keeps the history of each report."""
    create_markdown_artifact(markdown=markdown, key=key, description=description)
