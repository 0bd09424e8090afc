"""The stand-ins guard their APIs with a key as upstream does (issue 19), and stay open without.

vLLM 0.6 (vllm/entrypoints/openai/api_server.py): ``VLLM_API_KEY or --api-key``; every path
starting with /v1 wants ``Authorization: Bearer <key>``, else 401 ``{"error": "Unauthorized"}``;
/health and /metrics stay open. Qdrant (src/actix/mod.rs, src/common/auth): every path but
/, /healthz, /readyz*, /livez* wants the key as the ``api-key`` header or a bearer token, else
401; the read-only key reads and is refused writes (403).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import Standin, StartStandin

KEY = "sk-standin-test-key"
MODEL = "test-model"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("env", "args"),
    [
        ({"VLLM_API_KEY": KEY}, ()),
        ({}, ("--model", MODEL, "--api-key", KEY)),
        ({}, (f"--api-key={KEY}",)),
        # vLLM 0.6 takes the environment's key before the argument's
        ({"VLLM_API_KEY": KEY}, ("--api-key", "another")),
    ],
    ids=["env", "argument", "argument=", "env-wins"],
)
def test_vllm_wants_its_key_on_v1_only(
    start_standin: StartStandin, env: dict[str, str], args: tuple[str, ...]
) -> None:
    vllm = start_standin("vllm", env, args=("--served-model-name", MODEL, *args))
    for headers in ({}, bearer("wrong"), {"Authorization": KEY}, {"api-key": KEY}):
        listed = httpx.get(f"{vllm.url}/v1/models", headers=headers)
        assert listed.status_code == 401, headers
        assert listed.json() == {"error": "Unauthorized"}
        chat = httpx.post(f"{vllm.url}/v1/chat/completions", json=CHAT, headers=headers)
        assert chat.status_code == 401, headers
    assert httpx.get(f"{vllm.url}/v1/models", headers=bearer(KEY)).status_code == 200
    chat = httpx.post(f"{vllm.url}/v1/chat/completions", json=CHAT, headers=bearer(KEY))
    assert chat.status_code == 200
    for open_path in ("/health", "/metrics", "/version"):
        assert httpx.get(vllm.url + open_path).status_code == 200, open_path


def test_vllm_without_a_key_is_open(start_standin: StartStandin) -> None:
    vllm = start_standin("vllm", {"VLLM_API_KEY": ""}, args=("--served-model-name", MODEL))
    assert httpx.get(f"{vllm.url}/v1/models").status_code == 200


@pytest.fixture
def qdrant(start_standin: StartStandin, tmp_path: Path) -> Standin:
    base = tmp_path
    return start_standin(
        "qdrant",
        {
            "QDRANT__SERVICE__API_KEY": KEY,
            "QDRANT__SERVICE__READ_ONLY_API_KEY": "ro-key",
            "QDRANT__STORAGE__STORAGE_PATH": str(base / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(base / "snapshots"),
        },
    )


def test_qdrant_wants_its_key_beyond_the_open_paths(qdrant: Standin) -> None:
    for open_path in ("/", "/healthz", "/readyz", "/livez"):
        assert httpx.get(qdrant.url + open_path).status_code == 200, open_path
    for headers in ({}, {"api-key": "wrong"}, bearer("wrong"), {"Authorization": KEY}):
        refused = httpx.get(f"{qdrant.url}/collections", headers=headers)
        assert refused.status_code == 401, headers
    for path in ("/metrics", "/telemetry", "/collections/c/snapshots"):
        assert httpx.get(qdrant.url + path).status_code == 401, path
    assert httpx.get(f"{qdrant.url}/collections", headers={"api-key": KEY}).status_code == 200
    assert httpx.get(f"{qdrant.url}/collections", headers=bearer(KEY)).status_code == 200


def test_qdrant_read_only_key_reads_and_is_refused_writes(qdrant: Standin) -> None:
    vectors = {"vectors": {"size": 2, "distance": "Dot"}}
    full, read_only = {"api-key": KEY}, {"api-key": "ro-key"}
    refused = httpx.put(f"{qdrant.url}/collections/c", json=vectors, headers=read_only)
    assert refused.status_code == 403
    assert httpx.put(f"{qdrant.url}/collections/c", json=vectors, headers=full).is_success
    points = {"points": [{"id": 1, "vector": [1.0, 0.0]}]}
    upsert = httpx.put(f"{qdrant.url}/collections/c/points", json=points, headers=read_only)
    assert upsert.status_code == 403
    assert httpx.get(f"{qdrant.url}/collections/c", headers=read_only).is_success
    count = httpx.post(
        f"{qdrant.url}/collections/c/points/count", json={}, headers=bearer("ro-key")
    )
    assert count.is_success
    for write in ("/collections/c/snapshots", "/collections/c/points/delete"):
        answer = httpx.post(qdrant.url + write, json={"points": [1]}, headers=read_only)
        assert answer.status_code == 403, write
    assert httpx.delete(f"{qdrant.url}/collections/c", headers=read_only).status_code == 403


def test_qdrant_without_a_key_is_open(start_standin: StartStandin, tmp_path: Path) -> None:
    base = tmp_path
    qdrant = start_standin(
        "qdrant",
        {
            "QDRANT__STORAGE__STORAGE_PATH": str(base / "open-storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(base / "open-snapshots"),
        },
    )
    assert httpx.get(f"{qdrant.url}/collections").status_code == 200


def test_webui_lists_the_workers_models_with_the_key_it_is_given(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    """Open WebUI calls its OpenAI connection (OPENAI_API_BASE_URL) with OPENAI_API_KEY as a
    bearer token, as upstream lists models: the worker's key gets the list, another a 401."""
    worker = start_standin("vllm", args=("--model", MODEL, "--api-key", KEY), probe="/health")
    base = f"{worker.url}/v1"

    def connection(key: str | None) -> dict[str, object]:
        env = {"DATA_DIR": str(tmp_path / f"data-{key}"), "OPENAI_API_BASE_URL": base}
        webui = start_standin("webui", env | ({"OPENAI_API_KEY": key} if key else {}))
        answer: dict[str, object] = httpx.get(f"{webui.url}/api/standin/openai").json()
        return answer

    assert connection(KEY) == {"base_url": base, "status": 200, "models": [MODEL]}
    assert connection("wrong")["status"] == 401
    assert connection(None)["status"] == 401
