"""Change log runbook step: check the stack's hash-chained change log and publish it."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from flows.runbook import flow_config, run_name
from sbx.errors import ChangeLogDamaged
from tasks.changelog import (
    ChangeEntry,
    ChangeLogReport,
    anchor_variable_name,
    read_changes,
    short_value,
    verify_changes,
)
from tasks.reports import artifact_key, publish_markdown

SHOWN = 50  # the artifact lists the newest entries; the file keeps them all


@task(name="verify-changelog", cache_policy=NO_CACHE)
def verify_with_anchor(stack_dir: str) -> ChangeLogReport:
    """Verify the chain against the head copy kept in a Prefect Variable (else the head file)."""
    from pathlib import Path

    stack = Path(stack_dir)
    anchor = Variable.get(anchor_variable_name(stack), default=None)
    return verify_changes(stack, anchor=str(anchor) if anchor else None)


@flow(name="show-changelog", flow_run_name=lambda: run_name("changelog"), log_prints=False)
def show_changelog(stack: str | None = None, config_file: str | None = None) -> ChangeLogReport:
    """Check the stack's change log (every upgrade, rollback, model swap and in-place restore
    sbx made) and publish its newest entries as a markdown artifact.

    Fails naming the first entry that was edited, removed, reordered or cut short, or when the
    end of the log was removed (the head kept in a Prefect Variable is not in the chain).
    """
    config = flow_config(stack, config_file)
    report = verify_with_anchor(str(config.stack_dir))
    entries = read_changes(config.stack_dir)
    publish_markdown(
        artifact_key("changelog", config.stack_dir.name),
        render_markdown(entries, report),
        f"Change log of {config.stack_dir}",
    )
    get_run_logger().info("%s", report.describe())
    if not report.intact:
        raise ChangeLogDamaged(report.describe())
    return report


def render_markdown(entries: list[ChangeEntry], report: ChangeLogReport) -> str:
    verdict = "intact" if report.intact else f"**DAMAGED**: {report.describe()}"
    lines = [
        f"# Change log: {len(entries)} entries, chain {verdict}",
        "",
        "| # | time (UTC) | action | target | before | after | flow run |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in reversed(entries[-SHOWN:]):
        lines.append(
            f"| {e.seq} | {e.time} | {e.action} | {e.target} | {short_value(e.before)} | "
            f"{short_value(e.after)} | {e.flow_run_id or '-'} |"
        )
    return "\n".join(lines) + "\n"
