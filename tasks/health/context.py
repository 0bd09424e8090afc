"""What every check family needs, read once per run: compose model, containers, service URLs."""

from __future__ import annotations

import time

from blocks.config import SbxConfig
from sbx.errors import SbxError
from tasks.clients.compose import ComposeModel
from tasks.clients.docker_engine import ContainerInfo, connect
from tasks.health.model import HealthContext, ServiceTarget
from tasks.keys import NO_KEYS, read_keys
from tasks.status import _published_url, _split_by_directory, _targets, compose_for
from tasks.vllm_args import served_model

DOCKER_TIMEOUT_S = 10  # docker-py's per-call timeout for the health run


def read_context(config: SbxConfig) -> HealthContext:
    """The compose model and the project's containers; errors become part of the context."""
    started = time.perf_counter()
    try:
        model = compose_for(config).model()
    except SbxError as exc:
        return HealthContext(
            stack_dir=config.stack_dir,
            project=None,
            services={},
            compose_error=str(exc),
            read_ms=_ms(started),
        )
    containers: list[ContainerInfo] = []
    docker_error = None
    try:
        with connect(timeout_s=DOCKER_TIMEOUT_S) as engine:
            containers = engine.project_containers(model.project)
    except SbxError as exc:
        docker_error = str(exc)
    ours, _ = _split_by_directory(containers, config.stack_dir)
    by_service: dict[str, ContainerInfo] = {}
    for info in ours:
        if info.service and (info.service not in by_service or info.running):
            by_service[info.service] = info  # prefer a running replica
    return HealthContext(
        stack_dir=config.stack_dir,
        project=model.project,
        services=_service_targets(config, model, by_service),
        docker_error=docker_error,
        read_ms=_ms(started),
    )


def _service_targets(
    config: SbxConfig, model: ComposeModel, by_service: dict[str, ContainerInfo]
) -> dict[str, ServiceTarget]:
    targets = {}
    keys = read_keys(config, model)
    for name, svc in _targets(config, model).items():
        info = by_service.get(svc.compose_service)
        declared = model.services.get(svc.compose_service)
        targets[name] = ServiceTarget(
            name=name,
            config=svc,
            in_compose=declared is not None,
            depends_on=declared.depends_on if declared else [],
            container=info,
            url=svc.url or (_published_url(svc, info) if info else None),
            credentials=keys.get(svc.compose_service, NO_KEYS),
            served_model=served_model(declared.command).served if declared else None,
        )
    return targets


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
