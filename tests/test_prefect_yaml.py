"""prefect.yaml: every entrypoint loads and accepts its deployment's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

from deployments.bootstrap import WORK_POOL

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_loads_and_takes_its_parameters(
    deployment: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(
        ROOT
    )  # entrypoints are paths relative to the project, as prefect deploy has it
    entrypoint = str(deployment["entrypoint"])
    flow = load_flow_from_entrypoint(entrypoint)
    parameters = deployment.get("parameters") or {}
    assert isinstance(parameters, dict)
    flow.validate_parameters(parameters)
    assert flow.description, f"{entrypoint} needs a docstring: the Prefect UI shows it"
    pool = deployment["work_pool"]
    assert isinstance(pool, dict) and pool["name"] == WORK_POOL
    for schedule in deployment.get("schedules") or []:  # type: ignore[attr-defined]
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))


def test_the_nightly_backup_and_daily_prune_are_scheduled() -> None:
    by_entry = {d["entrypoint"]: d for d in DEPLOYMENTS}
    assert by_entry["flows/backup.py:backup_stack"]["schedules"][0]["cron"] == "0 2 * * *"
    assert by_entry["flows/prune.py:prune_repository"]["schedules"]


def test_health_runs_every_5_minutes_without_overlap() -> None:
    (health,) = [d for d in DEPLOYMENTS if d["entrypoint"] == "flows/health.py:health_check"]
    assert health["schedules"][0]["cron"] == "*/5 * * * *"
    assert health["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    limit = ConcurrencyLimitConfig(**health["concurrency_limit"])  # what prefect deploy sends
    assert limit.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW


def test_deployment_names_say_what_runs_and_when() -> None:
    """`<verb>-<schedule>`, unique: `sbx serve` puts the stack in front (#20), and the UI's
    deployment list then reads stack-backup-nightly, stack-restore-on-demand..."""
    names = [d["name"] for d in DEPLOYMENTS]
    assert len(set(names)) == len(names), names
    for deployment in DEPLOYMENTS:
        name = deployment["name"]
        assert name.endswith("-on-demand") == (not deployment.get("schedules")), name
        assert name.split("-")[0] in deployment["tags"], (name, deployment["tags"])
