"""Incident runbook: preserve evidence before anything restarts; check a bundle later."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from flows.runbook import flow_config, run_name
from sbx.errors import ConfigError, EvidenceDamaged, EvidenceIncomplete, SbxError
from tasks.changelog import append_change, read_changes, verify_changes
from tasks.incident.bundle import (
    append_custody,
    latest_bundle,
    new_bundle_dir,
    seal,
    verify_bundle,
    write_manifest,
)
from tasks.incident.evidence import (
    SourceResult,
    preserve_compose,
    preserve_containers,
    preserve_env,
    preserve_gpu,
    preserve_logs,
    preserve_metrics,
)
from tasks.incident.record import (
    current_incident,
    incident_dir,
    open_or_current,
    read_incident,
    record_action,
)
from tasks.reports import artifact_key, publish_markdown

CHANGE_ACTION = "incident-evidence"
Source = Callable[[SbxConfig, Path], SourceResult]
SOURCES: dict[str, Source] = {
    "containers": preserve_containers,
    "logs": preserve_logs,
    "compose": preserve_compose,
    "env": preserve_env,
    "gpu": preserve_gpu,
    "metrics": preserve_metrics,
}


class EvidenceReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    incident: str
    bundle: Path
    manifest_sha256: str
    files: int
    bytes: int
    sources: list[SourceResult]
    problems: list[str]


class EvidenceCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    bundle: Path
    manifest_sha256: str | None
    recorded_sha256: str | None  # what the change log says the manifest hashed to
    files: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@flow(name="incident-preserve", flow_run_name=lambda: run_name("incident-preserve"))
def preserve_evidence(
    stack: str | None = None, config_file: str | None = None, incident: str | None = None
) -> EvidenceReport:
    """Collect an evidence bundle before anything is restarted or recreated: docker inspect and
    timestamped logs of every container, the logs/ tree, the resolved compose file, env
    fingerprints (never values), GPU and /metrics snapshots. Every file is hashed into
    MANIFEST.sha256, made read-only, and the manifest's hash goes to the change log. Changes
    nothing in the stack: always safe to run."""
    log = get_run_logger()
    config = flow_config(stack, config_file)
    info = open_or_current(config.stack_dir, "preserve", incident)
    bundle = new_bundle_dir(incident_dir(config.stack_dir, info.id) / "evidence")
    append_custody(bundle, "preserve started")
    results, problems = [], []
    for name, collect in SOURCES.items():
        try:
            result = collect(config, bundle)
        except (SbxError, OSError) as exc:  # one source missing must not cost the others
            problems.append(f"{name}: {exc}")
            log.error("evidence source %s failed: %s", name, exc)
            continue
        results.append(result)
        problems += [f"{name}: could not copy {what}" for what in result.missing]
        log.info("%s: %d file(s), %d bytes", name, result.files, result.bytes)
    manifest_hash = write_manifest(bundle)
    rel = bundle.relative_to(config.stack_dir).as_posix()
    files = sum(r.files for r in results)
    size = sum(r.bytes for r in results)
    append_custody(bundle, "preserved and sealed", manifest_sha256=manifest_hash, files=files)
    seal(bundle)
    append_change(
        config.stack_dir,
        action=CHANGE_ACTION,
        target=rel,
        after={"manifest_sha256": manifest_hash, "files": files, "incident": info.id},
    )
    record_action(
        config.stack_dir,
        info.id,
        "preserve",
        f"evidence bundle {bundle.name}: {files} files, manifest sha256 {manifest_hash[:16]}…",
        ok=not problems,
        details={"bundle": rel, "manifest_sha256": manifest_hash, "problems": problems},
    )
    report = EvidenceReport(
        incident=info.id,
        bundle=bundle,
        manifest_sha256=manifest_hash,
        files=files,
        bytes=size,
        sources=results,
        problems=problems,
    )
    publish_markdown(
        artifact_key("incident-preserve", config.stack_dir.name),
        _markdown(report),
        f"Evidence bundle {rel}",
    )
    if problems:
        raise EvidenceIncomplete(str(bundle), problems)
    return report


@flow(name="incident-verify-evidence", flow_run_name=lambda: run_name("incident-verify"))
def verify_evidence(
    stack: str | None = None,
    config_file: str | None = None,
    incident: str | None = None,
    bundle: str | None = None,
) -> EvidenceCheck:
    """Check an evidence bundle: every file against MANIFEST.sha256 (missing, extra, changed),
    and the manifest's hash against the one the change log recorded when it was made."""
    config = flow_config(stack, config_file)
    path = _bundle_path(config, incident, bundle)
    check = verify_bundle(path)
    problems = check.problems
    recorded = _recorded_hash(config.stack_dir, path)
    chain = verify_changes(config.stack_dir)
    if recorded is None:
        problems.append("no change-log entry records this bundle's manifest hash")
    elif check.manifest_sha256 is not None and recorded != check.manifest_sha256:
        problems.append(
            f"{path.name}/MANIFEST.sha256 hashes to {check.manifest_sha256[:16]}…, the change "
            f"log recorded {recorded[:16]}…"
        )
    if not chain.intact:
        problems.append(f"the change log itself is damaged: {chain.describe()}")
    result = EvidenceCheck(
        bundle=path,
        manifest_sha256=check.manifest_sha256,
        recorded_sha256=recorded,
        files=check.files,
        problems=problems,
    )
    append_custody(path, "verified" if result.ok else "verify FAILED", problems=problems)
    incident_id = path.parent.parent.name
    record_action(
        config.stack_dir,
        incident_id,
        "verify-evidence",
        f"bundle {path.name}: " + ("intact" if result.ok else f"{len(problems)} problem(s)"),
        ok=result.ok,
        details={"bundle": path.relative_to(config.stack_dir).as_posix(), "problems": problems},
    )
    if problems:
        raise EvidenceDamaged(str(path), problems)
    return result


def _bundle_path(config: SbxConfig, incident: str | None, bundle: str | None) -> Path:
    if bundle:
        path = Path(bundle)
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.is_dir() and (config.stack_dir / bundle).is_dir():
            path = config.stack_dir / bundle
        if not path.is_dir():
            raise ConfigError(f"No evidence bundle at {bundle}. Check the path.")
        path = path.resolve()
        if path.parent.name != "evidence" or config.stack_dir.resolve() not in path.parents:
            raise ConfigError(
                f"{path} is not an evidence bundle of {config.stack_dir} (expected "
                ".sbx/incidents/<id>/evidence/<time>/). Check the path or --stack."
            )
        return config.stack_dir / path.relative_to(config.stack_dir.resolve())
    info = (
        read_incident(config.stack_dir, incident)
        if incident
        else current_incident(config.stack_dir)
    )
    if info is None:
        raise ConfigError("No open incident in this stack; name one with --incident or a BUNDLE.")
    found = latest_bundle(incident_dir(config.stack_dir, info.id) / "evidence")
    if found is None:
        raise ConfigError(
            f"Incident {info.id} has no evidence bundle; run 'sbx incident preserve'."
        )
    return found


def _recorded_hash(stack_dir: Path, bundle: Path) -> str | None:
    rel = bundle.relative_to(stack_dir).as_posix()
    for entry in reversed(read_changes(stack_dir)):
        if entry.action == CHANGE_ACTION and entry.target == rel and isinstance(entry.after, dict):
            value = entry.after.get("manifest_sha256")
            return str(value) if value else None
    return None


def _markdown(report: EvidenceReport) -> str:
    lines = [
        f"# Evidence bundle of incident {report.incident}",
        "",
        f"`{report.bundle}`: {report.files} files, {report.bytes} bytes, "
        f"manifest sha256 `{report.manifest_sha256}`",
        "",
        "| source | files | bytes | notes |",
        "|---|---|---|---|",
    ]
    for r in report.sources:
        notes = "; ".join(r.notes)[:300].replace("|", "\\|")
        lines.append(f"| {r.source} | {r.files} | {r.bytes} | {notes} |")
    lines += [f"| **{p.split(':', 1)[0]}** | | | **failed**: {p.split(':', 1)[-1][:200]} |"
              for p in report.problems]  # fmt: skip
    return "\n".join(lines) + "\n"
