"""What exposes the box, stopping it and starting it again (``sbx incident freeze|unfreeze``).

Freeze stops the containers of services marked ``exposure = true`` (the proxy, tunnels) and,
when asked, the agents; it never removes them, so unfreeze starts the very same containers. The
containers stopped are recorded in the incident's actions (``details.stopped``): unfreeze reads
them back from there (:func:`frozen_containers`), not from anybody's memory.

Whether anything of the stack is still published beyond loopback after that is one check over
every container of the compose project (:func:`check_published`), with the rule the health
check uses (``tasks/health/exposure.py``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig, ServiceKind
from tasks.clients.compose import ComposeModel
from tasks.clients.docker_engine import ContainerInfo, connect
from tasks.health.exposure import beyond_loopback, describe_ports
from tasks.incident.record import IncidentAction
from tasks.retry import retry_if_transient
from tasks.status import compose_for

STOP_TIMEOUT_S = 30


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FrozenContainer(_Frozen):
    """One container freeze stopped (what unfreeze starts again)."""

    service: str  # the sbx service name
    compose_service: str
    container_id: str
    name: str


class FreezePlan(_Frozen):
    """What freeze will do: containers to stop, those already stopped, what it cannot stop."""

    project: str
    to_stop: list[FrozenContainer]
    already_stopped: list[str]
    cannot_stop: list[str]  # one sentence each: what, and why it cannot be stopped here


class PublicPort(_Frozen):
    container: str
    service: str | None
    ports: str  # "0.0.0.0:8443->443, :::8443->443"


def _ours(containers: list[ContainerInfo], stack_dir: Path) -> list[ContainerInfo]:
    """Containers started from this stack's directory (compose names a project after its
    directory: another stack elsewhere may share the name)."""
    here = stack_dir.resolve()
    return [c for c in containers if c.working_dir is None or Path(c.working_dir).resolve() == here]


def stack_containers(config: SbxConfig) -> tuple[ComposeModel, list[ContainerInfo]]:
    """The resolved compose project and its containers (every state) started from this stack."""
    model = compose_for(config).model()
    with connect() as engine:
        containers = engine.project_containers(model.project)
    return model, _ours(containers, config.stack_dir)


@task(name="plan-freeze", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient)
def plan_freeze(config: SbxConfig, agents: bool) -> FreezePlan:
    """The exposure services' containers (and the agents' when ``agents``) and their state."""
    model, containers = stack_containers(config)
    wanted = {
        name: svc
        for name, svc in config.enabled_services().items()
        if svc.exposure or (agents and svc.kind == ServiceKind.AGENT)
    }
    to_stop, already, cannot = [], [], []
    for name, svc in wanted.items():
        found = [c for c in containers if c.service == svc.compose_service]
        if not found and svc.url and svc.exposure:
            cannot.append(
                f"{name} is reached at {svc.url} but has no container in compose project "
                f"'{model.project}' that sbx could stop"
            )
        for info in found:
            if info.running or info.state in ("restarting", "paused"):
                to_stop.append(
                    FrozenContainer(
                        service=name,
                        compose_service=svc.compose_service,
                        container_id=info.id,
                        name=info.name,
                    )
                )
            else:
                already.append(info.name)
    return FreezePlan(
        project=model.project, to_stop=to_stop, already_stopped=already, cannot_stop=cannot
    )


@task(name="stop-exposure", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient)
def stop_container(container: FrozenContainer) -> FrozenContainer:
    """Stop one container (left in place, so unfreeze starts the same one). Idempotent."""
    with connect() as engine:
        engine.stop(container.container_id, timeout_s=STOP_TIMEOUT_S)
    return container


@task(
    name="start-exposure", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient
)
def start_container(config: SbxConfig, container: FrozenContainer) -> str:
    """Start a container freeze stopped; if it was removed since, create its service again."""
    _, containers = stack_containers(config)
    if any(c.id == container.container_id for c in containers):
        with connect() as engine:
            engine.start(container.container_id)
        return container.name
    compose_for(config).run("up", "-d", "--no-deps", container.compose_service)
    return f"{container.compose_service} (created again: container {container.name} was gone)"


@task(
    name="check-published", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient
)
def check_published(config: SbxConfig) -> list[PublicPort]:
    """Every running container of the stack that publishes a port beyond loopback."""
    _, containers = stack_containers(config)
    found = []
    for info in containers:
        outside = beyond_loopback(info.ports) if info.running else []
        if outside:
            found.append(
                PublicPort(container=info.name, service=info.service, ports=describe_ports(outside))
            )
    return found


def frozen_containers(actions: list[IncidentAction]) -> list[FrozenContainer]:
    """What freeze stopped and no unfreeze started since, from the incident's actions."""
    frozen: dict[str, FrozenContainer] = {}
    for action in actions:
        if action.step == "freeze":
            for raw in action.details.get("stopped", []):
                container = FrozenContainer.model_validate(raw)
                frozen[container.container_id] = container
        elif action.step == "unfreeze" and action.ok:
            for cid in action.details.get("started_ids", []):
                frozen.pop(cid, None)
    return list(frozen.values())
