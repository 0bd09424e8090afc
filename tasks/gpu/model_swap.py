"""Model swap steps: preflight, env edit (with a kept copy), restart, readiness, prompt suite.

A vLLM service takes its model as arguments (``--model``, ``--served-model-name``,
``--quantization``, ``--max-model-len``) that compose interpolates from a file of variables, on
the example ``env/stack.env`` (tasks/gpu/model_wiring.py finds which variable and which file).
A swap rewrites those lines in place (comments and other keys stay), keeps the previous file as
``<file>.pre-swap-<time>``, and restores it byte for byte when the new model fails the prompt
suite. ``--model`` becomes the new model's folder beside the old one (data/models/<name> is
mounted on /models), ``--served-model-name`` the model id.

The prompt suite is ``<stack>/prompts.yaml``: a list of ``{name, prompt, expect, max_tokens}``;
``expect`` is a regular expression searched in the reply. A swap *regresses* when a prompt that
passed on the old model fails on the new one.
"""

from __future__ import annotations

import re
import time
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from blocks.config import SbxConfig
from sbx.errors import ConfigError, ModelSwapBadService, ModelSwapRefused
from tasks.clients.health_http import HealthHttp
from tasks.gpu.capacity import CapacityVerdict
from tasks.gpu.check import preflight_on_box
from tasks.gpu.model_wiring import ModelWiring
from tasks.health.completion import judge_completion
from tasks.status import ServiceStatus, compose_for, read_stack_status
from tasks.vllm_args import ServedModel, served_model

PROMPTS_FILE = "prompts.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Prompt(_Frozen):
    name: str
    prompt: str
    expect: str = Field(description="Regular expression searched in the reply.")
    max_tokens: int = Field(default=32, ge=1)


class PromptResult(_Frozen):
    name: str
    passed: bool
    detail: str  # the reply's start, or why it failed


class SuiteResult(_Frozen):
    model: str
    results: list[PromptResult]

    @property
    def passed(self) -> set[str]:
        return {r.name for r in self.results if r.passed}


# -- env files -----------------------------------------------------------------------------------


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def edit_env(text: str, updates: dict[str, str | None]) -> str:
    """``text`` with each KEY=... line of ``updates`` replaced (None: removed), others kept."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.strip().partition("=")[0].strip()
        if "=" in line and key in updates and not key.startswith("#"):
            seen.add(key)
            if updates[key] is not None:
                lines.append(f"{key}={updates[key]}")
            continue
        lines.append(line)
    lines += [f"{k}={v}" for k, v in updates.items() if k not in seen and v is not None]
    return "\n".join(lines) + "\n"


def swap_plan(
    wiring: ModelWiring, model: str, quant: str | None, max_model_len: int | None
) -> tuple[dict[str, str | None], ServedModel]:
    """The variables to set for the new model, and the settings they give. Quantization and
    context length stay as they are unless given; ModelSwapBadService when the command has no
    variable for what must change."""
    old, variables = wiring.current, wiring.variables
    if old.model and old.model.startswith("/"):  # a folder: the new one beside it
        loads = str(PurePosixPath(old.model).parent / PurePosixPath(model).name)
    else:
        loads = model
    wanted = {"--model": loads, "--served-model-name": model}
    if "--served-model-name" not in variables:
        if old.served_model_name:  # a fixed served name would hide which model answers
            raise _unwired(wiring, model, "--served-model-name")
        del wanted["--served-model-name"]
    if quant is not None:
        wanted["--quantization"] = quant
    if max_model_len is not None:
        wanted["--max-model-len"] = str(max_model_len)
    updates: dict[str, str | None] = {}
    for flag, value in wanted.items():
        if flag not in variables:
            raise _unwired(wiring, model, flag)
        try:
            updates[variables[flag].variable] = variables[flag].variable_value(value)
        except ValueError as exc:
            raise ModelSwapBadService(wiring.service, model, str(exc)) from exc
    after = ServedModel(
        model=loads,
        served_model_name=model if "--served-model-name" in wanted else None,
        quantization=quant or old.quantization,
        max_model_len=max_model_len or old.max_model_len,
    )
    return updates, after


def _unwired(wiring: ModelWiring, model: str, flag: str) -> ModelSwapBadService:
    detail = (
        f"{wiring.service}'s command in {wiring.compose_file.name} passes no {flag} ${{VARIABLE}} "
        f"a swap could set: add one and set it in {wiring.env_file.name} (docs/real-box.md)"
    )
    return ModelSwapBadService(wiring.service, model, detail)


def served_now(config: SbxConfig, service: str) -> str | None:
    """The name ``service`` serves by the compose model now: its arguments, else (an image that
    reads them) SERVED_MODEL_NAME / MODEL in env/<service>.env."""
    declared = compose_for(config).model().services.get(service)
    served = served_model(declared.command).served if declared else None
    env_file = config.stack_dir / "env" / f"{service}.env"
    if served is None and env_file.is_file():
        env = parse_env(env_file.read_text())
        served = env.get("SERVED_MODEL_NAME") or env.get("MODEL")
    return served


def host_model_dir(config: SbxConfig, model: str) -> Path:
    """Where ``/models/<name>`` lives on the host: the stack's models part (data/models)."""
    part = config.parts.get("models")
    root = part.paths[0] if part and part.paths else "data/models"
    return config.stack_dir / root / Path(model).name


# -- tasks ---------------------------------------------------------------------------------------


@task(name="preflight-model-swap", cache_policy=NO_CACHE)
def preflight_swap(
    config: SbxConfig, service: str, model: str, max_model_len: int
) -> CapacityVerdict:
    """Capacity preflight of the new model, counting the memory ``service`` gives back.
    Anything but "fits" is refused with the numbers, before anything changes."""
    verdict = preflight_on_box(
        config, host_model_dir(config, model), max_model_len, replacing=service
    )
    if not verdict.fits:
        raise ModelSwapRefused(service, model, verdict.message)
    return verdict


@task(name="write-service-env", cache_policy=NO_CACHE)
def write_env(path: Path, text: str, keep_as: Path | None = None) -> None:
    """Write ``path`` atomically; with ``keep_as``, copy the current file there first."""
    if keep_as is not None:
        keep_as.write_bytes(path.read_bytes())
    tmp = path.with_name(path.name + ".sbx-tmp")
    tmp.write_text(text)
    tmp.replace(path)


@task(name="restart-service", cache_policy=NO_CACHE)
def restart_service(config: SbxConfig, service: str) -> None:
    """Recreate the service's container with its arguments interpolated again (others
    untouched)."""
    compose_for(config).run(
        "up", "-d", "--no-deps", "--force-recreate", service,
        next_step=f"Check 'docker compose logs {service}' and 'docker compose config {service}'.",
    )  # fmt: skip


@task(name="wait-model-ready", cache_policy=NO_CACHE)
def wait_model_ready(config: SbxConfig, service: str, served: str, timeout_s: float) -> str | None:
    """The service's base URL once ``/v1/models`` lists ``served``; None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with HealthHttp(timeout_s=3.0) as http:
        while time.monotonic() < deadline:
            status = service_status(config, service)
            url = status.url if status else None
            if status and url:
                body = http.get(url + "/v1/models", key=status.credentials.api_key).body()
                ids = [m.get("id") for m in (body or {}).get("data", []) if isinstance(m, dict)]
                if served in ids:
                    return url
            time.sleep(1)
    return None


def service_status(config: SbxConfig, service: str) -> ServiceStatus | None:
    """The compose service's status with a URL: where it answers and the key it expects."""
    for status in read_stack_status(config).services:
        if status.compose_service == service and status.url:
            return status
    return None


def service_key(config: SbxConfig, service: str) -> SecretStr | None:
    """The key the service's API expects (tasks/keys.py), None when it is open."""
    status = service_status(config, service)
    return status.credentials.api_key if status else None


def load_prompts(config: SbxConfig) -> list[Prompt]:
    path = config.stack_dir / PROMPTS_FILE
    try:
        raw: Any = yaml.safe_load(path.read_text())
        items = raw.get("prompts") if isinstance(raw, dict) else raw
        prompts = [Prompt.model_validate(item) for item in items or []]
        for p in prompts:
            re.compile(p.expect)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"No prompt suite at {path}: a model swap is only checked against one. Write "
            "prompts.yaml (a list of name, prompt, expect regex, max_tokens) and run it again."
        ) from exc
    except (OSError, yaml.YAMLError, ValidationError, TypeError, re.error) as exc:
        raise ConfigError(f"Prompt suite {path} is unusable: {exc}. Fix it and run again.") from exc
    if not prompts:
        raise ConfigError(f"Prompt suite {path} has no prompts; add at least one.")
    return prompts


@task(name="run-prompt-suite", cache_policy=NO_CACHE)
def run_prompt_suite(
    url: str, served: str, prompts: list[Prompt], key: SecretStr | None = None
) -> SuiteResult:
    """Ask each prompt once (temperature 0) and search its expected pattern in the reply."""
    results = []
    with HealthHttp(timeout_s=60.0) as http:
        for p in prompts:
            answer = http.post_json(
                url + "/v1/chat/completions",
                {
                    "model": served,
                    "messages": [{"role": "user", "content": p.prompt}],
                    "max_tokens": p.max_tokens,
                    "temperature": 0,
                },
                key=key,
            )
            if not answer.ok:
                results.append(PromptResult(name=p.name, passed=False, detail=answer.summary))
                continue
            verdict = judge_completion(answer.body(), served)
            if verdict.text is None:
                results.append(PromptResult(name=p.name, passed=False, detail=str(verdict.problem)))
                continue
            reply = verdict.text
            hit = re.search(p.expect, reply) is not None
            shown = reply[:80]
            detail = shown if hit else f"/{p.expect}/ not in {shown!r}"
            results.append(PromptResult(name=p.name, passed=hit, detail=detail))
    return SuiteResult(model=served, results=results)
