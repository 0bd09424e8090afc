"""Evidence sources of ``sbx incident preserve``: one task per source, each writing its folder
of the bundle and returning what it wrote.

    containers/<name>.inspect.json   docker inspect, environment values redacted
    containers/<name>.log            docker logs --timestamps (stdout+stderr), streamed to disk
    logs/...                         the stack's logs/ tree, rotated files included (copied)
    compose/config.json              docker compose config, environment values redacted
    env/fingerprints.json            sha256 of each env/*.env and its key names, never values
    gpu/inventory.json               one NVML reading ("no GPU" recorded as such)
    metrics/<service>.prom           /metrics of each OpenAI service that answers

Secret values must never reach a bundle: the environment a container runs with shows in
``docker inspect`` (Config.Env) and in the resolved compose file (``environment:``, where compose
inlines ``env_file``), and so do command lines (``--api-key sk-…``) and labels. Both are written
through one rule, ``tasks/incident/redact.py``: every env value, secret flags' arguments, secret
labels and every key value of the proxy keys file replaced by ``<redacted>``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import DockerOperationFailed, GpuError
from tasks.clients.docker_engine import connect
from tasks.clients.vllm_metrics import read_metrics_text
from tasks.gpu.check import read_gpus
from tasks.incident.bundle import copy_tree
from tasks.incident.exposure import stack_containers
from tasks.incident.redact import REDACTED, Redactor, key_rule
from tasks.retry import retry_if_transient
from tasks.status import compose_for, read_stack_status
from tasks.upgrade.journal import env_fingerprints

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class SourceResult(BaseModel):
    """What one source put in the bundle."""

    model_config = ConfigDict(frozen=True)

    source: str
    files: int
    bytes: int
    notes: list[str] = []
    missing: list[str] = []  # what the source holds but could not be copied into the bundle


__all__ = ["REDACTED", "redact_compose", "redact_env_list"]


def redact_env_list(items: list[str] | None) -> list[str] | None:
    """``["KEY=value", …]`` (docker inspect's Config.Env) with every value replaced."""
    return None if items is None else Redactor().env(items)


def redact_compose(config: dict[str, Any], rule: Redactor | None = None) -> dict[str, Any]:
    """The resolved compose model: environment values, secret arguments and labels replaced."""
    return (rule or Redactor()).compose(config)


def _write_json(path: Path, data: object) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.encode())


@task(name="preserve-containers", cache_policy=NO_CACHE)
def preserve_containers(config: SbxConfig, bundle: Path) -> SourceResult:
    """docker inspect and timestamped logs of every container of the stack, running or not."""
    _, containers = stack_containers(config)
    folder = bundle / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    files = size = 0
    notes, missing = [], []
    rule = key_rule(config)
    with connect() as engine:
        for info in containers:
            name = _SAFE_NAME.sub("_", info.name) or info.id[:12]
            try:
                attrs = rule.inspect(engine.inspect(info.id))
                size += _write_json(folder / f"{name}.inspect.json", attrs)
                size += engine.logs_to(info.id, folder / f"{name}.log")
            except DockerOperationFailed as exc:  # removed meanwhile: the others still count
                missing.append(f"{info.name} ({exc})")
                continue
            files += 2
            notes.append(f"{info.name}: {info.state}")
    return SourceResult(source="containers", files=files, bytes=size, notes=notes, missing=missing)


@task(name="preserve-logs", cache_policy=NO_CACHE)
def preserve_logs(config: SbxConfig, bundle: Path) -> SourceResult:
    """The stack's logs/ tree as it is now, rotated files included (copied, never moved)."""
    source = config.stack_dir / "logs"
    if not source.is_dir():
        return SourceResult(source="logs", files=0, bytes=0, notes=[f"no {source}"])
    files, size, notes, unreadable = copy_tree(source, bundle / "logs")
    return SourceResult(source="logs", files=files, bytes=size, notes=notes, missing=unreadable)


@task(
    name="preserve-compose", cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_if_transient
)
def preserve_compose(config: SbxConfig, bundle: Path) -> SourceResult:
    """The compose configuration as compose resolves it (files merged, variables filled in)."""
    done = compose_for(config).run("config", "--format", "json")
    resolved = redact_compose(json.loads(done.stdout), key_rule(config))
    size = _write_json(bundle / "compose" / "config.json", resolved)
    return SourceResult(
        source="compose",
        files=1,
        bytes=size,
        notes=["environment values, secret arguments and labels redacted"],
    )


def _env_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, _ = line.strip().removeprefix("export ").partition("=")
        if sep and key and not key.startswith("#"):
            keys.append(key.strip())
    return keys


@task(name="preserve-env", cache_policy=NO_CACHE)
def preserve_env(config: SbxConfig, bundle: Path) -> SourceResult:
    """sha256 of each env/*.env file and the names of its keys: never a value."""
    fingerprints = env_fingerprints(config.stack_dir)
    data = {
        rel: {"sha256": digest, "keys": _env_keys(config.stack_dir / rel)}
        for rel, digest in fingerprints.items()
    }
    size = _write_json(bundle / "env" / "fingerprints.json", data)
    return SourceResult(source="env", files=1, bytes=size, notes=[f"{len(data)} env file(s)"])


@task(name="preserve-gpu", cache_policy=NO_CACHE)
def preserve_gpu(config: SbxConfig, bundle: Path) -> SourceResult:
    """One reading of every GPU; a box without one records "no GPU" and why."""
    try:
        inventory = read_gpus(config)
    except GpuError as exc:  # a driver that answers badly is evidence too
        size = _write_json(bundle / "gpu" / "error.json", {"error": str(exc)})
        return SourceResult(source="gpu", files=1, bytes=size, notes=[str(exc)])
    size = _write_json(bundle / "gpu" / "inventory.json", inventory.model_dump(mode="json"))
    note = f"{len(inventory.gpus)} GPU(s)" if inventory.available else f"no GPU: {inventory.reason}"
    return SourceResult(source="gpu", files=1, bytes=size, notes=[note])


@task(name="preserve-metrics", cache_policy=NO_CACHE)
def preserve_metrics(config: SbxConfig, bundle: Path) -> SourceResult:
    """``/metrics`` of every OpenAI service that answers; those that do not are noted."""
    status = read_stack_status(config)
    folder = bundle / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    files = size = 0
    notes = []
    for service in status.services:
        if service.kind != ServiceKind.OPENAI.value:
            continue
        got = read_metrics_text(service.name, service.url, timeout_s=config.probe_timeout_s)
        if got.text is None:
            notes.append(f"{service.name}: {got.error}")
            continue
        path = folder / f"{_SAFE_NAME.sub('_', service.name)}.prom"
        path.write_text(got.text, encoding="utf-8")
        files += 1
        size += path.stat().st_size
        notes.append(f"{service.name}: {got.url}")
    return SourceResult(source="metrics", files=files, bytes=size, notes=notes)
