"""The example stack runs with keys on (issue 19): sbx finds them and its clients send them; the
same calls without them are refused (401) by the stand-ins in their containers, so the stack
cannot quietly accept anything."""

from __future__ import annotations

import httpx
import pytest
from bed import RunningStack

from blocks.config import load_config
from sbx.errors import QdrantError
from tasks.clients.health_http import HealthHttp
from tasks.clients.qdrant import connect as connect_qdrant
from tasks.status import read_stack_status

MODEL_OF = {"worker": "Qwen/Qwen2.5-7B-Instruct-AWQ", "watchdog": "Qwen/Qwen2.5-0.5B-Instruct"}


def test_sbx_sends_the_keys_it_reads_and_the_same_calls_without_them_get_401(
    running_stack: RunningStack,
) -> None:
    status = read_stack_status(load_config(running_stack.path))
    services = {s.compose_service: s for s in status.services}
    for name in ("qdrant", "worker", "watchdog"):
        key = services[name].credentials.api_key
        assert key is not None and key.get_secret_value() == running_stack.api_key(name), name
    assert services["open-webui"].credentials.api_key is None

    with HealthHttp(timeout_s=10) as http:
        for name in ("worker", "watchdog"):
            url, key = services[name].url, services[name].credentials.api_key
            chat = {"model": MODEL_OF[name], "messages": [{"role": "user", "content": "hi"}]}
            assert http.get(f"{url}/v1/models", key=key).ok, name
            assert http.post_json(f"{url}/v1/chat/completions", chat, key=key).ok, name
            assert http.get(f"{url}/v1/models").status_code == 401, name
            assert http.post_json(f"{url}/v1/chat/completions", chat).status_code == 401, name
            assert http.get(f"{url}/health").ok and http.get(f"{url}/metrics").ok, name
        qdrant = services["qdrant"]
        assert http.get(f"{qdrant.url}/collections", key=qdrant.credentials.api_key).ok
        assert http.get(f"{qdrant.url}/collections").status_code == 401
        assert http.get(f"{qdrant.url}/readyz").ok

    assert qdrant.url is not None
    with connect_qdrant(qdrant.url, api_key=qdrant.credentials.api_key) as client:
        client.collections()
    with connect_qdrant(qdrant.url) as client, pytest.raises(QdrantError, match="HTTP 401"):
        client.collections()

    # the proxy checks its own keys, then calls the worker with the worker's (UPSTREAM_API_KEY)
    proxy_key = next(iter(running_stack.proxy_keys().values()))
    with httpx.Client(timeout=10, trust_env=False, verify=running_stack.proxy_tls()) as http:
        through = http.get(
            running_stack.url("proxy") + "/v1/models",
            headers={"Authorization": f"Bearer {proxy_key}"},
        )
    assert through.status_code == 200, through.text
    # Open WebUI lists the worker's models with the worker's key, as env/webui.env wires it
    with HealthHttp(timeout_s=10) as http:
        wired = http.get(f"{services['open-webui'].url}/api/standin/openai")
    assert '"status": 200' in wired.text and MODEL_OF["worker"] in wired.text, wired.text
