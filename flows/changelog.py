"""Change log runbook step: check the stack's hash-chained change log and publish it."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.errors import ChangeLogDamaged
from tasks.changelog import ChangeEntry, ChangeLogReport, read_changes, short_value
from tasks.changelog_anchor import verify_with_anchor
from tasks.reports import artifact_key, publish_markdown

SHOWN = 50  # the artifact lists the newest entries; the file keeps them all


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
