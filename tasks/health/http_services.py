"""One check per HTTP service: the answers a user depends on, not only a 200 on /health.

worker / watchdog (OpenAI API): /v1/models lists the configured model, and a one-token chat
completion answers. qdrant: /readyz and the collection list. open-webui: /health and its login
page. Each check depends on its own container and the containers of its compose depends_on.
"""

from __future__ import annotations

from functools import partial

from pydantic import SecretStr

from blocks.config import SbxConfig, ServiceKind
from tasks.backup.box_state import read_model_settings
from tasks.clients.health_http import HealthHttp, HttpAnswer
from tasks.health.checks import Check, Outcome, failing, ok
from tasks.health.completion import judge_completion
from tasks.health.model import HealthContext, ServiceTarget

KINDS = (ServiceKind.OPENAI, ServiceKind.QDRANT, ServiceKind.WEBUI)


def plan(config: SbxConfig, ctx: HealthContext, http: HealthHttp) -> list[Check]:
    by_compose = {t.config.compose_service: name for name, t in ctx.services.items()}
    models = _configured_models(config, ctx)
    checks = []
    for name, target in ctx.services.items():
        if target.config.kind not in KINDS or not target.in_compose:
            continue
        parents = [f"container:{name}"] + [
            f"container:{by_compose[dep]}" for dep in target.depends_on if dep in by_compose
        ]
        observe = partial(_observe, target, http, config, models.get(name))
        checks.append(Check("service", name, observe, parents=tuple(parents)))
    return checks


def _configured_models(config: SbxConfig, ctx: HealthContext) -> dict[str, str]:
    """sbx.toml's [health] models, else what the service's arguments serve (upstream vLLM),
    else SERVED_MODEL_NAME / MODEL in env/<service>.env (an image that reads them)."""
    from_env = read_model_settings(ctx.stack_dir / "env")
    models = {}
    for name, target in ctx.services.items():
        settings = from_env.get(target.config.compose_service, {})
        model = target.served_model or settings.get("SERVED_MODEL_NAME") or settings.get("MODEL")
        if model:
            models[name] = model
    return {**models, **config.health.models}


def _observe(
    target: ServiceTarget, http: HealthHttp, config: SbxConfig, model: str | None
) -> Outcome:
    if target.url is None:
        return failing(
            "no URL: the container publishes no port to probe",
            f"Start the container, or set services.{target.name}.url in sbx.toml.",
        )
    kind = target.config.kind
    if kind == ServiceKind.OPENAI:
        logs = f"Read its log: 'docker compose logs --tail 100 {target.config.compose_service}'."
        key = target.credentials.api_key
        return _openai(target.url, http, model, config.health.completion_timeout_s, logs, key)
    if kind == ServiceKind.QDRANT:
        return _qdrant(target.url, target.config.health_path, http, target.credentials.for_reading)
    return _webui(target.url, target.config.health_path, http)


def _openai(
    url: str,
    http: HealthHttp,
    model: str | None,
    completion_timeout_s: float,
    logs: str,
    key: SecretStr | None,
) -> Outcome:
    listed = http.get(f"{url}/v1/models", key=key)
    if not listed.ok:
        return _bad(listed, "model list", logs)
    body = listed.body()
    data = body.get("data") if isinstance(body, dict) else None
    ids = [str(m.get("id")) for m in data or [] if isinstance(m, dict)]
    if model is not None and model not in ids:
        return failing(
            f"/v1/models lists {ids or 'no model'}, not the configured {model}",
            "Check the service's model settings (env/*.env) and its log.",
            latency_seconds=listed.elapsed_ms / 1000,
        )
    if not ids:
        return failing("/v1/models lists no model", logs)
    chosen = model or ids[0]
    answer = http.post_json(
        f"{url}/v1/chat/completions",
        {"model": chosen, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
        timeout_s=completion_timeout_s,
        key=key,
    )
    total = (listed.elapsed_ms + answer.elapsed_ms) / 1000
    if not answer.ok:
        return _bad(answer, "one-token chat completion", logs, listed=listed)
    verdict = judge_completion(answer.body(), chosen)
    if not verdict.ok:
        return failing(f"one-token chat {verdict.problem}", logs, latency_seconds=total)
    return ok(
        f"{chosen} listed ({listed.elapsed_ms:.0f} ms); one-token completion in "
        f"{answer.elapsed_ms:.0f} ms",
        latency_seconds=total,
        completion_latency_seconds=answer.elapsed_ms / 1000,
    )


def _qdrant(url: str, health_path: str, http: HealthHttp, key: SecretStr | None) -> Outcome:
    ready = http.get(url + health_path)
    if not ready.ok:
        return _bad(ready, health_path, "Read qdrant's log; check free disk and memory.")
    listed = http.get(f"{url}/collections", key=key)
    if not listed.ok:
        return _bad(listed, "collection list", "Read qdrant's log.", listed=ready)
    body = listed.body()
    result = body.get("result") if isinstance(body, dict) else None
    collections = result.get("collections") if isinstance(result, dict) else None
    if not isinstance(collections, list):
        return failing("/collections answered without a collection list", "Read qdrant's log.")
    total = (ready.elapsed_ms + listed.elapsed_ms) / 1000
    return ok(
        f"ready; {len(collections)} collection(s) ({total * 1000:.0f} ms)",
        latency_seconds=total,
        collections=float(len(collections)),
    )


def _webui(url: str, health_path: str, http: HealthHttp) -> Outcome:
    health = http.get(url + health_path)
    if not health.ok:
        return _bad(health, health_path, "Read open-webui's log.")
    page = http.get(f"{url}/auth")
    if not page.ok or "<html" not in page.text.lower():
        return _bad(page, "login page /auth", "Read open-webui's log.", listed=health)
    total = (health.elapsed_ms + page.elapsed_ms) / 1000
    return ok(f"healthy; login page served ({total * 1000:.0f} ms)", latency_seconds=total)


def _bad(
    answer: HttpAnswer, what: str, next_step: str, *, listed: HttpAnswer | None = None
) -> Outcome:
    total = (answer.elapsed_ms + (listed.elapsed_ms if listed else 0)) / 1000
    summary = answer.summary if not answer.ok else "an unexpected page"
    if answer.status_code in (401, 403):
        next_step = (
            "The service refused sbx's key (or got none): sbx reads it from the compose file "
            "(QDRANT__SERVICE__API_KEY, --api-key, VLLM_API_KEY) or the sbx-secrets block's "
            "api_keys; see docs/real-box.md."
        )
    return failing(
        f"{what} at {answer.url}: {summary} ({answer.elapsed_ms:.0f} ms)",
        next_step,
        latency_seconds=total,
    )
