"""The Prefect tasks of the health flow: read the context, one task per check family, alerts,
the report artifact and the metrics file."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from tasks.alerts import locked_state, plan_notices, remember, save_state
from tasks.clients.notify import Notifier
from tasks.health.context import read_context
from tasks.health.metrics import save_last_report, write_textfile
from tasks.health.model import CheckResult, Delivery, HealthContext, HealthReport
from tasks.health.round import run_family
from tasks.reports import artifact_key
from tasks.run_alerts import deliver
from tasks.upgrade.maintenance import muted_checks

log = logging.getLogger("sbx.health")


@task(name="read-health-context", cache_policy=NO_CACHE)
def read_health_context(config: SbxConfig) -> HealthContext:
    """The compose model and the project's containers, read once for every check."""
    return read_context(config)


@task(name="check", task_run_name="check-{family}", cache_policy=NO_CACHE)
def check_family(
    family: str, config: SbxConfig, ctx: HealthContext, repository: str
) -> list[CheckResult]:
    """One family of checks, each check (per service or resource) concurrently."""
    return run_family(family, config, ctx, repository)


@task(name="send-alerts", cache_policy=NO_CACHE)
def send_alerts(config: SbxConfig, report: HealthReport) -> list[Delivery]:
    """Tell each alert target what changed since it was last told; never raises."""
    if not config.alerts:
        return []
    now = datetime.now(UTC)
    notifier = Notifier()
    deliveries, done = [], []
    with locked_state(config.stack_dir) as (previous, path):
        reminder = timedelta(hours=config.health.reminder_hours)
        muted = muted_checks(config.stack_dir, [c.id for c in report.checks])
        notices = plan_notices(previous, report, config.alerts, now, reminder, muted)
        for notice in notices:
            if not notice.wanted:
                done.append(notice)
                continue
            block = config.alerts[notice.target].block
            delivery = deliver(
                notifier,
                notice.target,
                block,
                notice.check,
                notice.event,
                notice.subject,
                notice.body,
            )
            deliveries.append(delivery)
            if delivery.delivered:
                done.append(notice)
        save_state(path, remember(previous, report, done, now))
    return deliveries


@task(name="publish-health", cache_policy=NO_CACHE)
def publish_health(config: SbxConfig, report: HealthReport) -> None:
    """A keyed table artifact (history per stack), the last report under <stack>/.sbx/, and,
    when configured, the metrics file."""
    rows = [
        {
            "check": c.id,
            "state": c.state if c.suppressed_by is None else f"suppressed by {c.suppressed_by}",
            "observed": c.observed,
            "next step": c.next_step or "",
            "ms": round(c.duration_ms),
        }
        for c in report.checks
    ]
    failing = ", ".join(c.id for c in report.failing) or "none"
    create_table_artifact(
        table=rows,
        key=artifact_key("health", config.stack_dir.name),
        description=f"Health of {config.stack_dir}: failing {failing}",
    )
    save_last_report(config.stack_dir, report)  # for 'sbx health --serve-metrics'
    if config.health.metrics_file is not None:
        write_textfile(config.health.metrics_file, report)
