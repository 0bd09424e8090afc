"""`sbx incident preserve` and `sbx incident verify-evidence` (flows/incident/preserve.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from sbx.cli.incident.freeze import setup_incident
from sbx.cli.options import ConfigOption, IncidentOption, JsonOption, StackOption, err, out


def preserve(
    stack: StackOption = None,
    config: ConfigOption = None,
    incident_id: IncidentOption = None,
    json_: JsonOption = False,
) -> None:
    """Collect an evidence bundle before anything is restarted.

    Container inspect + logs, logs/, compose config, env fingerprints, GPU and /metrics;
    hashed, read-only, its hash in the change log. Last stdout line: the bundle's path.
    """
    box = setup_incident(stack, config)
    from flows.incident.preserve import preserve_evidence

    report = preserve_evidence(
        stack=box.stack_param,
        config_file=box.config_param,
        incident=incident_id,
    )
    if json_:
        out.print_json(report.model_dump_json())
        return
    for source in report.sources:
        err.print(f"{source.source}: {source.files} file(s), {source.bytes} bytes")
    err.print(f"manifest sha256 {report.manifest_sha256} (in the change log)")
    out.print(str(report.bundle), soft_wrap=True)


def verify_evidence(
    bundle: Annotated[
        str | None,
        typer.Argument(help="Bundle folder (default: the incident's newest bundle)."),
    ] = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    incident_id: IncidentOption = None,
) -> None:
    """Check an evidence bundle: every hash, and the manifest's hash against the change
    log. Exit 1 naming missing, extra or changed files."""
    box = setup_incident(stack, config)
    from flows.incident.preserve import verify_evidence as verify_flow

    check = verify_flow(
        stack=box.stack_param,
        config_file=box.config_param,
        incident=incident_id,
        bundle=bundle,
    )
    err.print(f"[green]intact[/]: {check.files} files match, manifest hash as recorded")
    out.print(f"{check.bundle} intact", soft_wrap=True)


def register(incident: typer.Typer) -> None:
    incident.command()(preserve)
    incident.command("verify-evidence")(verify_evidence)
