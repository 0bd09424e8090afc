"""Reading the stack's state: which services run, their health, image digests, ports, endpoints.

Read-only and fast (one `docker compose config`, one container listing, concurrent HTTP probes), so
`sbx status` calls it directly; flows (health, upgrade, incident) call it as a task.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from blocks.config import SbxConfig, ServiceConfig
from sbx.stopping import stoppable_pool
from tasks.clients.compose import ComposeCli, ComposeModel
from tasks.clients.docker_engine import ContainerInfo, connect
from tasks.clients.http_probe import HttpProbe, ProbeResult
from tasks.keys import NO_KEYS, ServiceKeys, read_keys


class ServiceStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    compose_service: str
    kind: str
    required: bool
    state: str  # a Docker state, or "missing" (no container) / "not in compose file"
    health: str | None
    container: str | None
    image: str | None
    digest: str | None  # repo digest when pulled from a registry, else the local image id
    ports: list[str]
    url: str | None
    probe: ProbeResult | None
    problem: str | None
    # the keys its API expects (tasks/keys.py): for the clients, never in a dump or a repr
    credentials: ServiceKeys = Field(default=NO_KEYS, exclude=True, repr=False)

    @property
    def ok(self) -> bool:
        return self.problem is None


class StackStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    stack_dir: Path
    project: str
    services: list[ServiceStatus]
    #: directories of containers that carry this project's name but were started elsewhere
    foreign: list[str] = []

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services if s.required)

    @property
    def failing(self) -> list[ServiceStatus]:
        return [s for s in self.services if s.required and not s.ok]


def compose_for(config: SbxConfig) -> ComposeCli:
    return ComposeCli(
        config.stack_dir, project=config.compose.project, files=config.compose.files or None
    )


def read_stack_status(config: SbxConfig) -> StackStatus:
    """Describe every configured service (and any other container of the compose project)."""
    model = compose_for(config).model()
    with connect() as engine:
        containers = engine.project_containers(model.project)
    # compose names a project after its directory: another stack in a directory of the same
    # name is another project under the same name. Never act on (or back up) its containers.
    ours, foreign = _split_by_directory(containers, config.stack_dir)
    by_service: dict[str, ContainerInfo] = {}
    for info in ours:
        if info.service and (info.service not in by_service or info.running):
            by_service[info.service] = info  # prefer a running replica
    targets = _targets(config, model)
    keys = read_keys(config, model)
    # a SIGTERM does not wait for the probes (sbx/stopping.py)
    with HttpProbe(timeout_s=config.probe_timeout_s) as probe, stoppable_pool(8) as pool:
        futures = [
            pool.submit(
                _describe,
                name,
                svc,
                model,
                by_service.get(svc.compose_service),
                probe,
                keys.get(svc.compose_service, NO_KEYS),
            )
            for name, svc in targets.items()
        ]
        services = [future.result() for future in futures]
    return StackStatus(
        stack_dir=config.stack_dir, project=model.project, services=services, foreign=foreign
    )


def _split_by_directory(
    containers: list[ContainerInfo], stack_dir: Path
) -> tuple[list[ContainerInfo], list[str]]:
    here = stack_dir.resolve()
    ours, foreign = [], set()
    for info in containers:
        if info.working_dir is None or Path(info.working_dir).resolve() == here:
            ours.append(info)
        else:
            foreign.add(info.working_dir)
    return ours, sorted(foreign)


def _targets(config: SbxConfig, model: ComposeModel) -> dict[str, ServiceConfig]:
    """Configured services present in (or required by) the stack, then unconfigured compose ones."""
    targets = {
        name: svc
        for name, svc in config.enabled_services().items()
        if svc.required or svc.compose_service in model.services
    }
    configured = {svc.compose_service for svc in config.services.values()}
    for name in model.services:
        if name not in configured:
            targets[name] = ServiceConfig(compose_service=name, kind="agent", required=False)
    return targets


def _describe(
    name: str,
    svc: ServiceConfig,
    model: ComposeModel,
    info: ContainerInfo | None,
    probe: HttpProbe,
    keys: ServiceKeys,
) -> ServiceStatus:
    url = svc.url or (_published_url(svc, info) if info else None)
    result = probe.get(url + svc.health_path) if url and info and info.running else None
    problem = _problem(svc, model, info, url, result)
    declared = model.services.get(svc.compose_service)
    compose_image = declared.image if declared else None
    return ServiceStatus(
        name=name,
        compose_service=svc.compose_service,
        kind=svc.kind.value,
        required=svc.required,
        state=info.state
        if info
        else ("missing" if svc.compose_service in model.services else "not in compose file"),
        health=info.health if info else None,
        container=info.name if info else None,
        image=info.image_ref if info else compose_image,
        digest=(info.repo_digests[0].split("@", 1)[1] if info.repo_digests else info.image_id)
        if info
        else None,
        ports=[f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.protocol}" for p in info.ports]
        if info
        else [],
        url=url,
        probe=result,
        problem=problem,
        credentials=keys,
    )


def _published_url(svc: ServiceConfig, info: ContainerInfo) -> str | None:
    tcp = [p for p in info.ports if p.protocol == "tcp" and p.host_port]
    if svc.port is not None:
        tcp = [p for p in tcp if p.container_port == svc.port]
    if not tcp:
        return None
    port = tcp[0]
    host = "127.0.0.1" if port.host_ip in ("0.0.0.0", "") else port.host_ip  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if port.container_port == 443 else "http"
    return f"{scheme}://{host}:{port.host_port}"


def _problem(
    svc: ServiceConfig,
    model: ComposeModel,
    info: ContainerInfo | None,
    url: str | None,
    result: ProbeResult | None,
) -> str | None:
    if svc.compose_service not in model.services:
        return f"service '{svc.compose_service}' is not in the compose file"
    if info is None:
        return "no container (start it with 'docker compose up -d')"
    if not info.running:
        exit_note = f", exit code {info.exit_code}" if info.exit_code else ""
        return f"container is {info.state}{exit_note}"
    if info.health == "unhealthy":
        return "Docker healthcheck reports unhealthy"
    if svc.kind.value in ("openai", "qdrant", "webui") and url is None:
        return f"no published port to probe; set services.{svc.compose_service}.url in sbx.toml"
    if result is not None and not result.ok:
        return f"{result.url} does not answer: {result.summary}"
    return None
