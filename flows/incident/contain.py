"""Incident step 4, contain: revoke keys, take domains off allowlists, recreate containers."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from flows.runbook import flow_config, run_name
from tasks.changelog import room_for_changes
from tasks.incident.actions import (
    block_domains,
    recreate_services,
    restart_key_readers,
    revoke_keys,
)
from tasks.incident.contain import ContainPlan, plan_orders
from tasks.incident.record import (
    current_incident,
    open_or_current,
    read_incident,
    record_action,
)
from tasks.incident.text import plain

STEP = "contain"


class ContainReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    incident_id: str | None  # None: a dry run with no incident open
    dry_run: bool
    plan: ContainPlan
    done: list[str]  # the plan's sentences as carried out ("would …" lines in a dry run)


@flow(name="incident-contain", flow_run_name=lambda: run_name("incident-contain"))
def incident_contain(
    revoke: list[str] | None = None,
    block: list[str] | None = None,
    recreate: list[str] | None = None,
    from_blast_radius: bool = False,
    dry_run: bool = False,
    incident: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> ContainReport:
    """Revoke API keys (then restart the services that read the keys file), remove domains from
    every agent allowlist, and recreate containers from the clean image digests the upgrade
    journal recorded. --from-blast-radius adds the keys and domains the saved blast-radius report
    flagged. Refuses before changing anything when an order cannot be carried out. Every change
    goes to the change log (keys by fingerprint, never their value) and the incident's actions.
    """
    log = get_run_logger()
    config = flow_config(stack, config_file)
    if dry_run:  # a dry run opens no incident: it looks at the current one, if any
        info = read_incident(config.stack_dir, incident) if incident else current_incident(
            config.stack_dir)  # fmt: skip
    else:
        info = open_or_current(config.stack_dir, STEP, incident)
    incident_id = info.id if info else None
    plan = plan_orders(
        config, incident_id, revoke=revoke or [], block=block or [], recreate=recreate or [],
        from_blast_radius=from_blast_radius,
    )  # fmt: skip
    for note in plan.notes:
        log.info("%s", plain(note))
    if dry_run:
        lines = [f"would {s}" for s in plan.sentences()]
        for line in lines:
            log.info("%s", plain(line))
        return ContainReport(incident_id=incident_id, dry_run=True, plan=plan, done=lines)
    assert info is not None  # not a dry run: open_or_current always gives one
    opened = info.id
    if plan.empty:
        record_action(
            config.stack_dir, opened, STEP, "nothing to contain: " + "; ".join(plan.notes),
            details={"notes": plan.notes},
        )  # fmt: skip
        return ContainReport(incident_id=opened, dry_run=False, plan=plan, done=[])
    with room_for_changes(config.stack_dir):  # a full .sbx refuses here, nothing changed
        done = block_domains(config, opened, plan)
        if plan.revoke:
            done += revoke_keys(config, opened, plan)
            done += restart_key_readers(config, opened, plan)
        if plan.recreate:
            done += recreate_services(config, opened, plan)
    return ContainReport(incident_id=opened, dry_run=False, plan=plan, done=done)
