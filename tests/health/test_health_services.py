"""Service checks against the stand-in servers run as local processes (no Docker)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from health_helpers import target
from standins.conftest import StartStandin, free_port

from blocks.config import SbxConfig
from tasks.clients.health_http import HealthHttp
from tasks.health import http_services
from tasks.health.checks import run_check
from tasks.health.model import HealthContext, ServiceTarget

MODEL = "Qwen/Qwen2.5-7B-Instruct-AWQ"


def post(url: str, body: dict[str, str]) -> dict[str, str]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def check_all(tmp_path: Path, targets: dict[str, ServiceTarget], **health: object) -> dict:  # type: ignore[type-arg]
    config = SbxConfig(stack_dir=tmp_path, health=health)  # type: ignore[arg-type]
    ctx = HealthContext(stack_dir=tmp_path, project="p", services=targets)
    with HealthHttp(timeout_s=2) as http:
        return {r.id: r for r in map(run_check, http_services.plan(config, ctx, http))}


@pytest.fixture
def services(start_standin: StartStandin, tmp_path: Path) -> dict[str, ServiceTarget]:
    worker = start_standin("vllm", args=("--served-model-name", MODEL))
    qdrant = start_standin(
        "qdrant",
        {
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "q" / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "q" / "snapshots"),
        },
    )
    webui = start_standin("webui", {"DATA_DIR": str(tmp_path / "webui")})
    # the configured model comes from env/<service>.env, as on a real box
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "worker.env").write_text(f"SERVED_MODEL_NAME={MODEL}\nAPI_KEY=secret\n")
    return {
        "worker": target("worker", "openai", url=worker.url),
        "qdrant": target("qdrant", "qdrant", url=qdrant.url, health_path="/readyz"),
        "open-webui": target("open-webui", "webui", url=webui.url),
    }


def test_healthy_services_answer(tmp_path: Path, services: dict[str, ServiceTarget]) -> None:
    got = check_all(tmp_path, services)
    assert {k: v.state for k, v in got.items()} == {
        "service:worker": "ok",
        "service:qdrant": "ok",
        "service:open-webui": "ok",
    }, got
    assert "one-token completion" in got["service:worker"].observed
    assert got["service:worker"].parents == ["container:worker"]
    assert got["service:qdrant"].measures["collections"] == 0
    assert got["service:worker"].measures["latency_seconds"] > 0


def test_completion_500_while_models_answer_is_failing(
    tmp_path: Path, services: dict[str, ServiceTarget]
) -> None:
    url = services["worker"].url
    assert post(f"{url}/admin/fault", {"mode": "error"}) == {"mode": "error"}
    with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as resp:
        assert resp.status == 200  # the model list still answers
    worker = check_all(tmp_path, services)["service:worker"]
    assert worker.state == "failing"
    assert "one-token chat completion" in worker.observed and "HTTP 500" in worker.observed
    assert "docker compose logs --tail 100 worker" in (worker.next_step or "")
    post(f"{url}/admin/fault", {"mode": "none"})
    assert check_all(tmp_path, services)["service:worker"].state == "ok"


def test_hung_completion_fails_within_its_timeout(
    tmp_path: Path, services: dict[str, ServiceTarget]
) -> None:
    post(f"{services['worker'].url}/admin/fault", {"mode": "hang"})
    worker = check_all(tmp_path, services, completion_timeout_s=0.5)["service:worker"]
    assert worker.state == "failing" and "no answer within 0.5 s" in worker.observed


def test_wrong_model_and_refused_port(tmp_path: Path, services: dict[str, ServiceTarget]) -> None:
    gone = target("qdrant", "qdrant", url=f"http://127.0.0.1:{free_port()}", health_path="/readyz")
    got = check_all(tmp_path, {**services, "qdrant": gone}, models={"worker": "other/model"})
    assert got["service:worker"].state == "failing"
    assert "not the configured other/model" in got["service:worker"].observed
    assert got["service:qdrant"].state == "failing"
    assert "connection refused" in got["service:qdrant"].observed


def test_keyed_services_pass_with_their_keys_and_fail_401_without(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    """Issue 19: a vLLM started with --api-key and a Qdrant with QDRANT__SERVICE__API_KEY; the
    model list, the one-token completion and the collection list carry the key, and the same
    checks without it fail naming the 401 and where keys come from."""
    from pydantic import SecretStr

    from tasks.keys import ServiceKeys

    worker = start_standin("vllm", args=("--served-model-name", MODEL, "--api-key", "wk"))
    qdrant = start_standin(
        "qdrant",
        {
            "QDRANT__SERVICE__READ_ONLY_API_KEY": "qro",  # the health check only reads
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "q" / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "q" / "snapshots"),
        },
    )
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "worker.env").write_text(f"SERVED_MODEL_NAME={MODEL}\n")
    keyless = {
        "worker": target("worker", "openai", url=worker.url),
        "qdrant": target("qdrant", "qdrant", url=qdrant.url, health_path="/readyz"),
    }
    keys = {
        "worker": ServiceKeys(api_key=SecretStr("wk")),
        "qdrant": ServiceKeys(read_only_key=SecretStr("qro")),
    }
    keyed = {name: t.model_copy(update={"credentials": keys[name]}) for name, t in keyless.items()}
    got = check_all(tmp_path, keyed)
    assert {k: v.state for k, v in got.items()} == dict.fromkeys(got, "ok"), got
    assert "one-token completion" in got["service:worker"].observed
    refused = check_all(tmp_path, keyless)
    assert {k: v.state for k, v in refused.items()} == dict.fromkeys(refused, "failing")
    for result in refused.values():
        assert "HTTP 401" in result.observed, result
        assert "sbx-secrets" in (result.next_step or "")
