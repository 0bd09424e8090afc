"""Incident runbook, recover: restore a snapshot if asked, then health checks and prompt suite."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from flows.health import health_check
from flows.restore import restore_snapshot
from flows.runbook import flow_config, run_name
from sbx.errors import HealthChecksFailed, RecoverRefused, RecoveryFailed, SbxError
from tasks.gpu.model_swap import (
    SuiteResult,
    load_prompts,
    run_prompt_suite,
    served_now,
    service_status,
)
from tasks.health.model import HealthReport
from tasks.incident.record import open_or_current, read_actions, record_action
from tasks.reports import artifact_key, publish_markdown

SCHEMA_VERSION = 1


class RecoverReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    incident_id: str
    restored: str | None = None  # snapshot id swapped in
    kept_as: list[str] = []  # where the live data went
    health_checks: int = 0
    health_failing: list[str] = []
    service: str
    suite: SuiteResult | None = None
    problems: list[str] = []
    warnings: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.problems


@flow(
    name="incident-recover",
    flow_run_name=lambda: run_name("incident-recover"),
    log_prints=False,
)
def incident_recover(
    incident_id: str | None = None,
    snapshot: str | None = None,
    yes: bool = False,
    service: str = "worker",
    repo: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> RecoverReport:
    """Recover after an incident: with ``snapshot`` (an id or "latest"; needs ``yes``, it
    replaces live data) restore it in place — verified in staging, swapped in, health-checked,
    swapped back if unhealthy — then run every health check (no alerts sent) and the prompt
    suite (prompts.yaml) against ``service``. Each step is recorded in the incident; fails
    naming the restore, the failing checks or the failing prompts.
    """
    if snapshot is not None and not yes:
        raise RecoverRefused(
            f"Restoring {snapshot} in place replaces the stack's live data; nothing was changed. "
            "Run again with --yes (parameter yes=true) to restore it."
        )
    config = flow_config(stack, config_file)
    stack_dir = config.stack_dir
    info = open_or_current(stack_dir, "recover", incident_id)
    problems: list[str] = []
    warnings: list[str] = []
    restored, kept_as = None, []
    if snapshot is not None:
        try:
            outcome = restore_snapshot(
                snapshot=snapshot, in_place=True, repo=repo, stack=str(stack_dir),
                config_file=config_file,
            )  # fmt: skip
        except SbxError as exc:
            problems.append(f"restore of {snapshot} failed: {exc}")
            record_action(stack_dir, info.id, "recover", problems[-1], ok=False,
                          details={"snapshot": snapshot})  # fmt: skip
        else:
            restored = outcome.snapshot_id
            kept_as = list(outcome.kept)  # every path the restore kept, relative to the stack
            record_action(
                stack_dir, info.id, "recover", f"restored snapshot {restored} in place",
                details={"restored": restored, "kept_as": kept_as},
            )  # fmt: skip
            if any(a.step == "contain" and a.ok for a in read_actions(stack_dir, info.id)):
                warnings.append(
                    f"{restored} was restored after 'sbx incident contain': it may hold revoked "
                    "keys (proxy/keys.txt) or allowlisted domains again; run contain again"
                )
                get_run_logger().warning("%s", warnings[-1])
    health = _health(config, repo, config_file)
    failing = [c.id for c in health.failing]
    if failing:
        problems.append(f"health checks failing: {', '.join(failing)}")
    record_action(
        stack_dir, info.id, "recover",
        f"health: {len(health.checks)} checks, failing: {', '.join(failing) or 'none'}",
        ok=not failing, details={"health_failing": failing},
    )  # fmt: skip
    suite, why = _suite(config, service)
    failed = [r for r in suite.results if not r.passed] if suite else []
    if why or failed:
        why = why or "prompts failing: " + ", ".join(f"{r.name} ({r.detail})" for r in failed)
        problems.append(f"prompt suite on {service}: {why}")
    passed = len(suite.passed) if suite else 0
    record_action(
        stack_dir, info.id, "recover",
        f"prompt suite on {service}: {passed} of {len(suite.results) if suite else 0} passed"
        + (f"; {why}" if why else ""),
        ok=why is None, details={"suite_failed": [r.name for r in failed], "service": service},
    )  # fmt: skip
    report = RecoverReport(
        incident_id=info.id, restored=restored, kept_as=kept_as, health_checks=len(health.checks),
        health_failing=failing, service=service, suite=suite, problems=problems,
        warnings=warnings,
    )  # fmt: skip
    _publish(report)
    if problems:
        get_run_logger().error("recovery not done: %s", "; ".join(problems))
        raise RecoveryFailed(report)
    return report


def _health(config: SbxConfig, repo: str | None, config_file: str | None) -> HealthReport:
    """The health flow's round as a subflow, without alerts (the operator is watching)."""
    try:
        return health_check(
            stack=str(config.stack_dir), config_file=config_file, repo=repo, alerts=False
        )
    except HealthChecksFailed as exc:
        report: HealthReport = exc.report  # the errors floor types reports as Any
        return report


def _suite(config: SbxConfig, service: str) -> tuple[SuiteResult | None, str | None]:
    """The prompt suite's result, or why it could not run."""
    try:
        prompts = load_prompts(config)
        served = served_now(config, service)  # its arguments, as compose gives them
        status = service_status(config, service)  # Docker may be down: that is a finding too
    except SbxError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read env/{service}.env ({exc.strerror})"
    if status is None or status.url is None or not served:
        return None, (
            f"{service} has no reachable URL or serves no model by its arguments "
            "(--served-model-name, --model)"
        )
    return run_prompt_suite(status.url, served, prompts, status.credentials.api_key), None


def _publish(report: RecoverReport) -> None:
    verdict = "recovered" if report.ok else "NOT recovered"
    lines = [f"# Incident {report.incident_id}: {verdict}", ""]
    if report.restored:
        lines.append(f"Restored snapshot {report.restored} in place; previous data kept as "
                     f"{', '.join(report.kept_as) or '(nothing)'}.")  # fmt: skip
    failing = ", ".join(report.health_failing) or "none"
    lines += ["", f"Health: {report.health_checks} checks, failing: {failing}.", ""]
    if report.suite:
        lines += [f"| prompt ({report.service}) | result |", "|---|---|"]
        lines += [
            f"| {r.name} | {'pass' if r.passed else 'fail: ' + r.detail.replace('|', '/')} |"
            for r in report.suite.results
        ]
    lines += ["", *(f"- {p}" for p in report.problems), *(f"- ⚠ {w}" for w in report.warnings)]
    publish_markdown(
        artifact_key("incident-recover", report.incident_id),
        "\n".join(lines) + "\n",
        f"Recovery of incident {report.incident_id}",
    )
