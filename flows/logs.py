"""Log rotation runbook: the stack's own log files, rotated by size or age, losing no line."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow

from flows.runbook import flow_config, run_name
from sbx.errors import LogRotationIncomplete, StackError
from tasks.logs.directory import rotate_log_directory
from tasks.logs.plan import find_log_files
from tasks.logs.report import LogRotationReport, rotation_markdown
from tasks.reports import artifact_key, publish_markdown


@flow(name="rotate-logs", flow_run_name=lambda: run_name("logs"), log_prints=False)
def rotate_logs(
    stack: str | None = None,
    config_file: str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> LogRotationReport:
    """Rotate the stack's log files ([logs] globs, default logs/**/*.log) by size or age.

    Each due file's complete lines are copied into a compressed, time-stamped file beside it,
    read back, and only then cut from the live file's head with fallocate — so a container
    appending to it (O_APPEND) loses no line, unlike logrotate's copytruncate. Keeps the newest
    [logs] keep rotated files per log. With ``dry_run`` it only says what it would do; ``force``
    rotates every non-empty file.
    """
    started, clock = datetime.now(UTC), time.monotonic()
    config = flow_config(stack, config_file)
    if not config.stack_dir.is_dir():
        raise StackError(
            f"Stack directory {config.stack_dir} does not exist. Pass --stack DIR (or set "
            "SBX_STACK_DIR) to the directory that holds docker-compose.yml."
        )
    directories = [
        rotate_log_directory(config.stack_dir, directory, files, config.logs, dry_run, force)
        for directory, files in find_log_files(config.stack_dir, config.logs.globs).items()
    ]
    report = LogRotationReport(
        stack_dir=str(config.stack_dir),
        dry_run=dry_run,
        started_at=started,
        duration_s=time.monotonic() - clock,
        directories=directories,
    )
    publish_markdown(
        artifact_key("logs", config.stack_dir.name),
        rotation_markdown(report),
        f"Log rotation of {config.stack_dir}",
    )
    if report.problems:
        raise LogRotationIncomplete(report)
    return report
