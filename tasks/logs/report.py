"""What a log rotation did, per file and per directory: the flow's report and its artifact."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tasks.logs.fs import COLLAPSE_RANGE, COPYTRUNCATE, PUNCH_HOLE
from tasks.units import human_bytes

FileAction = Literal["rotated", "would-rotate", "kept", "refused", "failed"]

GUARANTEES: dict[str | None, str] = {
    COLLAPSE_RANGE: "lossless: every appended line is in the live file or a rotated file, "
    "once; rotated files hold whole lines; the live file may begin with one blank padding line",
    PUNCH_HOLE: "lossless: every appended line is in the live file or a rotated file, once; "
    "disk space is freed but the live file keeps its apparent size (a hole of zeros at its head)",
    COPYTRUNCATE: "LOSSY (configured): lines appended between the last copy and the truncate are "
    "lost, as with logrotate's copytruncate",
    None: "nothing cut: the filesystem has neither FALLOC_FL_COLLAPSE_RANGE nor "
    "FALLOC_FL_PUNCH_HOLE; set logs.method = 'copytruncate' in sbx.toml to accept losing lines",
}


class LogFileResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # relative to the stack
    action: FileAction
    reason: str
    rotated_to: str | None = None
    bytes_rotated: int = 0
    compressed_bytes: int = 0
    cut_bytes: int = 0  # removed from the live file's head (collapse) or punched
    padding: int = 0  # blanked bytes now at the live file's head (collapse-range)
    live_size: int = 0  # the live file's size afterwards
    deleted: list[str] = []  # rotated files beyond `keep`, deleted (or that would be)


class LogDirectoryReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    directory: str
    filesystem: str
    supported: list[str]  # lossless methods the filesystem has
    method: str | None  # the one used (None: refused)
    guarantee: str
    files: list[LogFileResult]


class LogRotationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    stack_dir: str
    dry_run: bool
    started_at: datetime
    duration_s: float
    directories: list[LogDirectoryReport]

    @property
    def files(self) -> list[LogFileResult]:
        return [f for d in self.directories for f in d.files]

    @property
    def problems(self) -> list[str]:
        return [
            f"{f.path}: {f.action}: {f.reason}"
            for f in self.files
            if f.action in ("refused", "failed")
        ]

    @property
    def rotated(self) -> list[LogFileResult]:
        return [f for f in self.files if f.action in ("rotated", "would-rotate")]


def rotation_markdown(report: LogRotationReport) -> str:
    verb = "would rotate" if report.dry_run else "rotated"
    lines = [
        f"# Log rotation{' (dry run)' if report.dry_run else ''}: {len(report.rotated)} of "
        f"{len(report.files)} files {verb}",
        "",
        f"Stack `{report.stack_dir}`, {report.duration_s:.1f} s.",
    ]
    for d in report.directories:
        lines += [
            "",
            f"## `{d.directory}` — {d.filesystem}, method {d.method or 'none'}",
            "",
            f"Guarantee: {d.guarantee}.",
            "",
            "| file | action | why | rotated to | lines | compressed | deleted |",
            "|---|---|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {f.path} | {f.action} | {f.reason} | {f.rotated_to or ''} "
            f"| {human_bytes(f.bytes_rotated)} | {human_bytes(f.compressed_bytes)} "
            f"| {', '.join(f.deleted)} |"
            for f in d.files
        ]
    if not report.directories:
        lines += ["", "No live log file matched [logs] globs."]
    return "\n".join(lines) + "\n"
