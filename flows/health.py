"""Health runbook: every check of the box, concurrently; alerts on change; a report."""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.errors import HealthChecksFailed
from tasks.health.model import HealthReport
from tasks.health.round import FAMILIES, suppress
from tasks.health.steps import check_family, publish_health, read_health_context, send_alerts
from tasks.runners import stoppable_task_runner


@flow(
    name="health-check",
    flow_run_name=lambda: run_name("health"),
    log_prints=False,
    task_runner=stoppable_task_runner(),  # a SIGTERM does not wait for a probe's deadline
)
def health_check(
    stack: str | None = None,
    config_file: str | None = None,
    repo: str | None = None,
    alerts: bool = True,
) -> HealthReport:
    """Check the sealed box: containers, service answers (a real one-token completion), disk,
    backup age against the RPO, exposure and the proxy's certificate, container CPU and memory,
    the watchdog's verdicts. Alerts go out on change only (failing, recovered, reminders), through
    the notification blocks in sbx.toml [alerts]. Fails naming every failing check.
    """
    started_at, started = datetime.now(UTC), time.perf_counter()
    config = flow_config(stack, config_file)
    repository = repo or config.repository.location
    ctx = read_health_context(config)
    futures = [check_family.submit(f, config, ctx, repository) for f in FAMILIES]
    checks = suppress([r for future in futures for r in future.result()])
    report = HealthReport(
        stack_dir=config.stack_dir,
        project=ctx.project,
        host=platform.node(),
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        checks=checks,
    )
    if alerts:
        report = report.model_copy(update={"deliveries": send_alerts(config, report)})
    publish_health(config, report)
    log = get_run_logger()
    for check in report.failing:
        log.error("%s: %s. %s", check.id, check.observed, check.next_step or "")
    if not report.ok:
        raise HealthChecksFailed(report)
    return report
