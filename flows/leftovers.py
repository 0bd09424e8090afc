"""Finish what a killed sbx run left behind, before any other command touches the stack.

Three leftovers exist: containers a cold copy stopped (a marker under ``.sbx/stopped/``), a
restore drill's scratch project (a marker under ``.sbx/drills/``) and an upgrade or rollback
journal entry left open (``.sbx/upgrade/open.json``), each once its process is gone.
Mutating flows finish them in their first task (observe_stack, tasks/leftovers/); the CLI runs
this flow first for every other command that names a stack (sbx/cli/runner.py), so a read-only
`sbx status` or `sbx health` after a kill -9 also ends on a consistent, recorded release — and the
run history shows it.
"""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict

from flows.runbook import flow_config, run_name, stack_label
from tasks.leftovers.finish import finish_leftovers
from tasks.reports import artifact_key, publish_markdown


class ReconcileReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    stack_dir: str
    restarted: list[str]  # containers a killed run had left stopped
    entry: str | None  # the journal entry finished, if one was open
    action: str | None  # upgrade | rollback
    state: str | None  # rolled-back | rollback-failed
    detail: str | None
    drills: list[str] = []  # scratch projects of killed drills torn down

    def describe(self) -> str:
        lines = []
        if self.restarted:
            lines.append(f"started again: {', '.join(self.restarted)} (a killed sbx run left them)")
        if self.drills:
            lines.append(f"torn down: {', '.join(self.drills)} (scratch projects of killed drills)")
        if self.entry:
            lines.append(
                f"finished {self.action} journal entry {self.entry} left open by a killed run: "
                f"{self.state} ({self.detail})"
            )
        return "\n".join(lines) or "nothing left behind"


@flow(name="reconcile-stack", flow_run_name=lambda: run_name("reconcile"), log_prints=True)
def reconcile_stack(stack: str | None = None, config_file: str | None = None) -> ReconcileReport:
    """Start what a killed sbx run left stopped and finish an upgrade it left open (back to the
    recorded release, health-gated). Runs on its own before a command when leftovers exist."""
    config = flow_config(stack, config_file)
    leftovers = finish_leftovers(config)
    restarted, closed = leftovers.restarted, leftovers.entry
    report = ReconcileReport(
        stack_dir=str(config.stack_dir),
        restarted=restarted,
        entry=closed.id if closed else None,
        action=closed.action if closed else None,
        state=closed.state if closed else None,
        detail=closed.detail if closed else None,
        drills=leftovers.drills,
    )
    publish_markdown(
        artifact_key("reconcile", stack_label(stack)),
        f"# Leftovers of a killed run\n\n{report.describe()}\n",
        "What a killed sbx run had left behind and how it was finished",
    )
    return report
