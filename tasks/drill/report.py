"""The drill report: what a drill showed, and its markdown artifact with the RTO trend."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sbx.repository.drills import DrillMark
from tasks.drill.gpu import HeldBack, read_paths
from tasks.health.model import CheckResult

TREND_ROWS = 12


class NotStarted(BaseModel):
    """A service the drill did not start in the scratch project, and what it checked instead."""

    model_config = ConfigDict(frozen=True)

    service: str
    reason: str
    checked_instead: list[str] = Field(description="Ids of the checks that stand in for it.")
    consumers: list[str] = Field(description="Restored services that depend on it.")
    relay: str | None = Field(description="The read-only relay consumers reach it through.")


def not_started(held: list[HeldBack], checks: list[CheckResult]) -> list[NotStarted]:
    notes = []
    for service in held:
        ids = {f"data:gpu-files:{path}" for path in read_paths([service])}
        instead = [c.id for c in checks if c.id in ids or c.id == f"live:{service.service}"]
        notes.append(
            NotStarted(
                service=service.service,
                reason=service.reason,
                checked_instead=instead,
                consumers=service.consumers,
                relay=service.relay,
            )
        )
    return notes


class DrillReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    drill_id: str
    snapshot_id: str
    repository: str
    stack_dir: Path
    scratch_project: str
    passed: bool
    started_at: datetime
    rto_s: float | None = Field(description="Restore start to healthy; None when never healthy.")
    phases: dict[str, float]
    checks: list[CheckResult]
    failure: str | None = Field(default=None, description="Why the drill stopped early.")
    leftovers: list[str] = Field(default_factory=list, description="What clean-up left behind.")
    not_started: list[NotStarted] = Field(
        default_factory=list, description="GPU services not started a second time, and why."
    )
    mark_key: str | None = None

    @property
    def failed(self) -> list[str]:
        lines = [f"{c.id}: {c.observed}" for c in self.checks if c.state == "failing"]
        lines += [f"clean-up: {problem}" for problem in self.leftovers]
        return ([f"drill: {self.failure}"] if self.failure else []) + lines


def drill_summary(report: DrillReport) -> str:
    """The artifact's description: ``Restore drill of <id>: passed, RTO 12.3 s`` (the fleet
    view reads the RTO from it, tasks/fleet.py)."""
    verdict = "passed" if report.passed else "FAILED"
    rto = f", RTO {report.rto_s:.1f} s" if report.passed and report.rto_s is not None else ""
    return f"Restore drill of {report.snapshot_id}: {verdict}{rto}"


def drill_markdown(report: DrillReport, history: list[DrillMark]) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    rto = f"{report.rto_s:.1f} s" if report.rto_s is not None else "never healthy"
    lines = [
        f"# Drill of {report.snapshot_id}: {verdict}",
        "",
        f"RTO (restore start to healthy): **{rto}**; scratch project `{report.scratch_project}` "
        f"from {report.repository}, torn down"
        + (f" (left: {'; '.join(report.leftovers)})" if report.leftovers else "")
        + ".",
    ]
    if report.failed:
        lines += ["", "## Failed", ""] + [f"- {line}" for line in report.failed]
    lines += _not_started_lines(report.not_started)
    if report.phases:
        lines += ["", "| phase | seconds |", "|---|---:|"]
        lines += [f"| {name} | {secs:.1f} |" for name, secs in report.phases.items()]
    if report.checks:
        lines += ["", "| check | state | observed |", "|---|---|---|"]
        lines += [f"| {c.id} | {c.state} | {_cell(c.observed)} |" for c in report.checks]
    lines += ["", "## RTO trend (newest last)", "", *trend_table(history)]
    return "\n".join(lines) + "\n"


def _not_started_lines(notes: list[NotStarted]) -> list[str]:
    if not notes:
        return []
    lines = ["", "## Not started in the scratch project", ""]
    for note in notes:
        instead = ", ".join(f"`{c}`" for c in note.checked_instead) or "nothing (see Failed)"
        reach = (
            f" Restored consumers ({', '.join(note.consumers) or 'none declared'}) reach the "
            f"live {note.service} through the relay `{note.relay}`: GET and HEAD only."
            if note.relay
            else f" No relay: the live {note.service} has no running container to reach."
        )
        lines.append(
            f"- **{note.service}**: {note.reason}; a second copy would take the GPU from the "
            f"live one. Checked instead: {instead} (its files by sha256, the live service "
            f"read-only: GET /health, GET /v1/models).{reach}"
        )
    return lines


def trend_table(history: list[DrillMark]) -> list[str]:
    recent = history[-TREND_ROWS:]
    if not recent:
        return ["(no drills recorded yet)"]
    timed = [m.rto_s for m in recent if m.rto_s is not None]
    top = max(timed, default=0.0) or 1.0
    rows = ["| drill | snapshot | result | RTO s | |", "|---|---|---|---:|---|"]
    for mark in recent:
        rto = f"{mark.rto_s:.1f}" if mark.rto_s is not None else "-"
        bar = "█" * max(1, round(20 * mark.rto_s / top)) if mark.rto_s is not None else ""
        result = "passed" if mark.passed else "failed"
        rows.append(f"| {mark.drill_id} | {mark.snapshot_id} | {result} | {rto} | {bar} |")
    if timed:
        rows += ["", f"RTO over these drills: min {min(timed):.1f} s, max {max(timed):.1f} s."]
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]
