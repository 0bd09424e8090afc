"""Incident runbook, first step: freeze the box's exposure; and the confirmed way back."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from flows.runbook import flow_config, run_name
from sbx.errors import ConfigError, FreezeIncomplete, SbxError, UnfreezeRefused
from tasks.changelog import append_change
from tasks.incident.exposure import (
    FrozenContainer,
    PublicPort,
    check_published,
    frozen_containers,
    plan_freeze,
    start_container,
    stop_container,
)
from tasks.incident.record import (
    current_incident,
    open_or_current,
    read_actions,
    read_incident,
    record_action,
)
from tasks.reports import artifact_key, publish_markdown

SCHEMA_VERSION = 1


class FreezeReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    incident: str
    stopped: list[FrozenContainer]
    already_stopped: list[str]
    still_public: list[PublicPort]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class UnfreezeReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    incident: str
    started: list[str]
    confirmed_by: str  # "cli --yes", "prefect ui"


class ConfirmUnfreeze(RunInput):
    """The form the Prefect UI shows on a paused unfreeze run."""

    confirm: bool = Field(
        default=False,
        description="Start the exposure services freeze stopped again (the box becomes "
        "reachable from outside). Leave unticked to refuse.",
    )


@flow(name="incident-freeze", flow_run_name=lambda: run_name("incident-freeze"))
def freeze_incident(
    stack: str | None = None,
    config_file: str | None = None,
    incident: str | None = None,
    agents: bool | None = None,
) -> FreezeReport:
    """Stop the box's exposure: the services marked `exposure = true` (the proxy, tunnels) and,
    with `agents` (or `incident.stop_agents_on_freeze`), the agent containers. Containers are
    stopped, not removed: evidence stays and unfreeze starts the same ones. Then checks that no
    container of the stack still publishes a port beyond loopback; fails naming any that does.
    Safe to run again."""
    log = get_run_logger()
    config = flow_config(stack, config_file)
    info = open_or_current(config.stack_dir, "freeze", incident)
    with_agents = config.incident.stop_agents_on_freeze if agents is None else agents
    plan = plan_freeze(config, with_agents)
    problems = list(plan.cannot_stop)
    stopped: list[FrozenContainer] = []
    for container in plan.to_stop:
        try:
            stopped.append(stop_container(container))
            log.info("stopped %s (%s)", container.name, container.service)
        except SbxError as exc:
            problems.append(f"{container.name} could not be stopped: {exc}")
    public = check_published(config)
    problems += [f"{p.container} still publishes {p.ports}" for p in public]
    report = FreezeReport(
        incident=info.id,
        stopped=stopped,
        already_stopped=plan.already_stopped,
        still_public=public,
        problems=problems,
    )
    names = [c.name for c in stopped]
    summary = (f"stopped {', '.join(names)}" if names else "nothing left running to stop") + (
        f"; {len(problems)} problem(s)" if problems else "; nothing published beyond loopback"
    )
    record_action(
        config.stack_dir,
        info.id,
        "freeze",
        summary,
        ok=report.ok,
        details=report.model_dump(mode="json", exclude={"incident", "schema_version"}),
    )
    if stopped:
        append_change(
            config.stack_dir,
            action="incident-freeze",
            target=",".join(sorted({c.service for c in stopped})),
            before={"running": names},
            after={"stopped": names, "incident": info.id},
        )
    publish_markdown(
        artifact_key("incident-freeze", config.stack_dir.name),
        _freeze_markdown(report),
        f"Freeze of {config.stack_dir} (incident {info.id})",
    )
    if problems:
        raise FreezeIncomplete(problems)
    return report


@flow(name="incident-unfreeze", flow_run_name=lambda: run_name("incident-unfreeze"))
def unfreeze_incident(
    stack: str | None = None,
    config_file: str | None = None,
    incident: str | None = None,
    confirmed: bool = False,
    confirm_timeout_s: int = 3600,
    poll_interval_s: int = 10,
) -> UnfreezeReport:
    """Start again what `sbx incident freeze` stopped (read from the incident's actions). Not
    confirmed by the caller (`--yes`), the run pauses and waits for an operator to confirm in
    the Prefect UI (Resume, tick `confirm`); a refusal or no answer starts nothing."""
    config = flow_config(stack, config_file)
    info = read_incident(config.stack_dir, incident) if incident else None
    info = info or current_incident(config.stack_dir)
    if info is None:
        raise ConfigError(
            "No open incident in this stack: nothing was frozen. Name one with --incident ID."
        )
    incident_id = info.id
    frozen = frozen_containers(read_actions(config.stack_dir, incident_id))
    how = "cli --yes" if confirmed else "prefect ui" if frozen else "nothing to confirm"
    if frozen and not confirmed:  # nothing to start exposes nothing: no question to ask
        _ask_operator(config.stack_dir, incident_id, frozen, confirm_timeout_s, poll_interval_s)
    started = [start_container(config, c) for c in frozen]
    summary = f"started {', '.join(started)}" if started else "nothing frozen to start"
    record_action(
        config.stack_dir,
        incident_id,
        "unfreeze",
        f"{summary} (confirmed: {how})",
        details={"started": started, "started_ids": [c.container_id for c in frozen]},
    )
    if started:
        append_change(
            config.stack_dir,
            action="incident-unfreeze",
            target=",".join(sorted({c.service for c in frozen})),
            before={"stopped": [c.name for c in frozen]},
            after={"running": started, "incident": incident_id, "confirmed": how},
        )
    return UnfreezeReport(incident=incident_id, started=started, confirmed_by=how)


def _ask_operator(
    stack_dir: Path, incident_id: str, frozen: list[FrozenContainer], timeout: int, poll: int
) -> None:
    names = ", ".join(c.name for c in frozen) or "nothing"
    get_run_logger().warning(
        "Waiting for confirmation in the Prefect UI: unfreeze would start %s (incident %s)",
        names,
        incident_id,
    )
    try:
        answer = pause_flow_run(wait_for_input=ConfirmUnfreeze, timeout=timeout, poll_interval=poll)
    except FlowPauseTimeout:
        why = f"no confirmation within {timeout} s"
    else:
        if answer.confirm:
            return
        why = "the operator did not tick confirm in the Prefect UI"
    record_action(stack_dir, incident_id, "unfreeze", f"refused: {why}", ok=False)
    raise UnfreezeRefused(why)


def _freeze_markdown(report: FreezeReport) -> str:
    verdict = "**frozen**" if report.ok else "**freeze incomplete**"
    lines = [f"# Incident {report.incident}: {verdict}", "", "| container | service | now |"]
    lines.append("|---|---|---|")
    lines += [f"| {c.name} | {c.service} | stopped by this run |" for c in report.stopped]
    lines += [f"| {name} | | was already stopped |" for name in report.already_stopped]
    lines += [f"| {p.container} | {p.service or ''} | **publishes {p.ports}** |" for p in
              report.still_public]  # fmt: skip
    if report.problems:
        lines += ["", "Problems:", *[f"- {p}" for p in report.problems]]
    return "\n".join(lines) + "\n"
