"""Done-when tests of issue #5 (health, alerts) on a running copy of examples/stack.

One stack for the module (each costs seconds and RAM); every test leaves it healthy again.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from bed import RunningStack, wait_until
from bed.services import http_status
from bed.stack import compose_command, prepare_stack, start_stack, stop_stack
from bed.webhook import WebhookReceiver, save_webhook_block

Sbx = Callable[..., CompletedProcess[str]]


@pytest.fixture(scope="module")
def health_stack(
    standin_images: dict[str, str],
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("health")
    stack = prepare_stack(root / "stack", run_id)
    # no repository yet: the backup check says so as information
    (stack.path / "sbx.toml").write_text(f'[repository]\nlocation = "{root / "repo"}"\n')
    start_stack(stack)
    try:
        yield stack
    finally:
        if not request.config.getoption("--keep-stack"):
            stop_stack(stack)


def set_fault(stack: RunningStack, mode: str) -> None:
    req = urllib.request.Request(
        f"{stack.url('worker')}/admin/fault",
        data=json.dumps({"mode": mode}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"mode": mode}


def assert_table_artifact(stack: RunningStack, text: str) -> None:
    """The newest health artifact of the stack is a table in the Prefect UI holding ``text``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.reports import artifact_key

    key = ArtifactFilterKey(any_=[artifact_key("health", stack.path.name)])
    with get_client(sync_client=True) as client:
        newest = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=key), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    assert newest and newest[0].type == "table"
    assert text in str(newest[0].data)


def test_all_healthy_exits_0(health_stack: RunningStack, run_sbx: Sbx) -> None:
    done = run_sbx("health", "--stack", str(health_stack.path), "--no-alerts")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks pass" in done.stdout
    for check in ("service:worker", "service:qdrant", "container:open-webui", "stats:worker"):
        assert check in done.stdout
    # the proxy and the agent are containers of the stack too; the test copy binds the proxy to
    # loopback, and its certificate is the example's (ten years)
    for check in ("container:proxy", "container:internet-research", "tls:proxy", "exposure:proxy"):
        assert check in done.stdout


def test_proxy_published_beyond_loopback_is_exposure_as_configured(
    health_stack: RunningStack, run_sbx: Sbx
) -> None:
    # what a real box does (the example's default SBX_PROXY_BIND): publish the proxy on every
    # address. Marked exposure = true in the default config: reported, not failing
    recreate = [*compose_command(), "up", "-d", "--wait", "--no-deps", "proxy"]
    env = {**health_stack.env(), "SBX_PROXY_BIND": "0.0.0.0"}
    try:
        subprocess.run(recreate, cwd=health_stack.path, env=env, check=True, capture_output=True)
        done = run_sbx("health", "--stack", str(health_stack.path), "--json", "--no-alerts")
    finally:
        health_stack.compose("up", "-d", "--wait", "--no-deps", "proxy")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["id"]: c for c in json.loads(done.stdout)["checks"]}
    port = health_stack.ports["proxy"]
    assert checks["exposure:proxy"]["state"] == "ok", checks["exposure:proxy"]
    assert f"exposed as configured: 0.0.0.0:{port}->443" in checks["exposure:proxy"]["observed"]
    assert checks["tls:proxy"]["state"] == "ok", checks["tls:proxy"]
    assert "CN=localhost" in checks["tls:proxy"]["observed"]
    assert checks["tls:proxy"]["measures"]["certificate_days_left"] > 3000
    others = [
        c
        for c in checks.values()
        if c["id"].startswith("exposure:") and c is not checks["exposure:proxy"]
    ]
    assert others and all("loopback only" in c["observed"] for c in others), others


def test_completion_500_while_models_answer_fails_naming_the_worker(
    health_stack: RunningStack, run_sbx: Sbx
) -> None:
    set_fault(health_stack, "error")
    try:
        models = f"{health_stack.url('worker')}/v1/models"
        assert http_status(models, headers=health_stack.auth("worker")) == 200
        done = run_sbx("health", "--stack", str(health_stack.path), "--json", "--no-alerts")
    finally:
        set_fault(health_stack, "none")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    states = {c["id"]: c for c in report["checks"]}
    assert states["service:worker"]["state"] == "failing"
    assert "HTTP 500" in states["service:worker"]["observed"]
    assert states["container:worker"]["state"] == "ok"
    assert [c["id"] for c in report["checks"] if c["state"] == "failing"] == ["service:worker"]
    assert "✗ service:worker" in done.stderr


def test_qdrant_down_alerts_once_and_recovers_once(
    health_stack: RunningStack, prefect_server: str, run_id: str, tmp_path: Path
) -> None:
    from flows.health import health_check
    from sbx.errors import HealthChecksFailed

    stack = str(health_stack.path)
    with WebhookReceiver() as receiver:
        block = save_webhook_block(f"sbx-health-{run_id}", receiver.url)
        config = tmp_path / "sbx.toml"
        config.write_text(
            (health_stack.path / "sbx.toml").read_text() + f'[alerts.pager]\nblock = "{block}"\n'
        )
        assert health_check(stack=stack, config_file=str(config)).ok
        assert receiver.take() == []

        health_stack.compose("stop", "qdrant")
        try:
            with pytest.raises(HealthChecksFailed) as failed:
                health_check(stack=stack, config_file=str(config))
            report = failed.value.report
            assert [c.id for c in report.failing] == ["container:qdrant"]
            assert report.check("service:qdrant").state == "suppressed"
            assert report.check("service:qdrant").suppressed_by == "container:qdrant"
            (alert,) = receiver.take()
            assert alert["subject"].startswith("[sbx] FAILING container:qdrant")
            assert_table_artifact(health_stack, "suppressed by container:qdrant")
            assert "exited" in alert["body"] and "docker compose up -d qdrant" in alert["body"]
            assert "service:qdrant" in alert["body"]  # named as covered by this alert

            with pytest.raises(HealthChecksFailed):  # still down: nothing new is sent
                health_check(stack=stack, config_file=str(config))
            assert receiver.take() == []
        finally:
            health_stack.compose("start", "qdrant")
        assert wait_until(
            lambda: http_status(f"{health_stack.url('qdrant')}/readyz") == 200, timeout=60
        )
        assert health_check(stack=stack, config_file=str(config)).ok
        (notice,) = receiver.take()
        assert notice["subject"].startswith("[sbx] RECOVERED container:qdrant")
