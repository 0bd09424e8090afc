"""History runbook: delete old health and GPU runs from the Prefect server's run history."""

from __future__ import annotations

from prefect import flow, get_run_logger

from blocks.history import READING_FLOWS
from flows.runbook import flow_config, run_name
from tasks.history import delete_old_runs


@flow(name="prune-history", flow_run_name=lambda: run_name("history"), log_prints=False)
def prune_history(
    dry_run: bool = False, stack: str | None = None, config_file: str | None = None
) -> int:
    """Delete this box's health and GPU runs that ended more than [history] health_days ago
    from the run history (the audit trail); every backup, restore, upgrade, drill and incident
    run stays for the server's own retention period (docs/fleet.md). Returns how many went."""
    config = flow_config(stack, config_file)
    days = config.history.health_days
    count = delete_old_runs(list(READING_FLOWS), days, config.box, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    get_run_logger().info(
        "%s %d health and GPU runs older than %g days%s", verb, count, days,
        f" of box {config.box}" if config.box else "",
    )  # fmt: skip
    return count
