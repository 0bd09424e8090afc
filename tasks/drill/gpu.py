"""GPU services in a restore drill: which services are not started a second time, and why.

A one-GPU box cannot run a second vLLM beside the live one: vLLM refuses to start when the
GPU's free memory is under its ``--gpu-memory-utilization`` share ("Free memory on device … is
less than desired GPU memory utilization"), and a drill must not take memory from the live
service either. So a drill starts every service but the GPU ones; for each of those it checks
instead what the snapshot holds of it (the files it reads, by sha256: tasks/drill/held_back.py)
and that the live one answers (read-only calls), and restored consumers reach the live one
through a read-only relay (tasks/drill/relay.py).

Which services are GPU services comes from the restored compose model (``docker compose config
--format json``): a GPU reservation (``deploy.resources.reservations.devices`` with the ``gpu``
capability or the ``nvidia`` driver), ``gpus:``, or ``runtime: nvidia``; ``[drill]
gpu_services`` in sbx.toml names them instead, ``[drill] start_gpu_services = true`` starts
them all as any other service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from blocks.config import DrillConfig
from sbx.errors import ConfigError

NVIDIA = "nvidia"
NOT_IN_SNAPSHOT = "(not in the snapshot) "


class HeldMount(BaseModel):
    """One mount of a service not started: what it reads, and where the restored copy is."""

    model_config = ConfigDict(frozen=True)

    target: str  # the path inside the container, e.g. /models
    source: str  # as the restored compose model gives it (a path, or a volume's name)
    path: str | None  # relative to the restored stack; None: the snapshot does not hold it


class HeldBack(BaseModel):
    """A service the drill does not start in the scratch project, and what stands in for it."""

    model_config = ConfigDict(frozen=True)

    service: str  # compose service name
    reason: str
    ports: list[int]  # container ports consumers reach it on
    networks: list[str]  # its networks in the scratch project (where its relay stands in)
    mounts: list[HeldMount]
    consumers: list[str]  # services whose depends_on names it
    # the live container a relay forwards to (filled once the live stack was read)
    live_container: str | None = None
    live_network: str | None = None
    live_image: str | None = None
    relay: str | None = None  # the relay's service name in the scratch project, when one runs


def gpu_reason(spec: dict[str, Any]) -> str | None:
    """Why a service of the compose model (``docker compose config --format json``) gets a GPU;
    None when it gets none."""
    resources = (spec.get("deploy") or {}).get("resources") or {}
    for device in (resources.get("reservations") or {}).get("devices") or []:
        capabilities = [str(c) for c in device.get("capabilities") or []]
        if "gpu" in capabilities or device.get("driver") == NVIDIA:
            return "its compose service reserves a GPU (deploy.resources.reservations.devices)"
    if spec.get("gpus"):
        return "its compose service reserves a GPU (gpus:)"
    if spec.get("runtime") == NVIDIA:
        return "its compose service runs with runtime: nvidia"
    return None


def gpu_services(resolved: dict[str, Any], drill: DrillConfig) -> dict[str, str]:
    """compose service -> why the drill does not start it (empty: start everything)."""
    services: dict[str, Any] = resolved.get("services") or {}
    if drill.start_gpu_services:
        return {}
    if drill.gpu_services is not None:
        unknown = sorted(set(drill.gpu_services) - set(services))
        if unknown:
            raise ConfigError(
                f"[drill] gpu_services names {', '.join(unknown)}, which the restored compose "
                f"file does not have (its services: {', '.join(sorted(services))}). Fix the "
                "names in sbx.toml."
            )
        return {name: "[drill] gpu_services names it" for name in sorted(drill.gpu_services)}
    reasons = {name: gpu_reason(spec) for name, spec in services.items()}
    return {name: why for name, why in sorted(reasons.items()) if why}


def plan_held_back(
    resolved: dict[str, Any], drill: DrillConfig, stack_dir: Path, stored: dict[str, str]
) -> list[HeldBack]:
    """The services not started and what they read, from the restored compose model.

    ``stored`` (tasks/drill/project.py ``restored_mounts``): where the snapshot holds mounts
    from outside the stack and named volumes."""
    services: dict[str, Any] = resolved.get("services") or {}
    reasons = gpu_services(resolved, drill)
    held = []
    for name, reason in reasons.items():
        spec = services[name]
        consumers = sorted(
            other for other, s in services.items() if name in (s.get("depends_on") or {})
        )
        held.append(
            HeldBack(
                service=name,
                reason=reason,
                ports=_container_ports(spec),
                networks=sorted(spec.get("networks") or {"default": None}),
                mounts=[
                    _mount(name, entry, stack_dir, stored)
                    for entry in spec.get("volumes") or []
                    if entry.get("type") in ("bind", "volume") and entry.get("source")
                ],
                consumers=[c for c in consumers if c not in reasons],
            )
        )
    return held


def _container_ports(spec: dict[str, Any]) -> list[int]:
    ports = {int(p["target"]) for p in spec.get("ports") or [] if p.get("target")}
    for exposed in spec.get("expose") or []:
        head = str(exposed).split("/", 1)[0]
        if head.isdigit():
            ports.add(int(head))
    return sorted(ports)


def _mount(
    service: str, entry: dict[str, Any], stack_dir: Path, stored: dict[str, str]
) -> HeldMount:
    target, source = str(entry.get("target", "")), str(entry["source"])
    path = stored.get(f"service {service}: {target}")
    if path is None and entry.get("type") == "bind" and Path(source).is_relative_to(stack_dir):
        path = Path(source).relative_to(stack_dir).as_posix()
    return HeldMount(target=target, source=source, path=path)


def read_paths(held: list[HeldBack]) -> dict[str, list[str]]:
    """Path in the restored stack -> ``service:target`` of each held-back service reading it;
    a mount the snapshot does not hold is keyed by its source."""
    readers: dict[str, list[str]] = {}
    for service in held:
        for mount in service.mounts:
            key = mount.path if mount.path is not None else f"{NOT_IN_SNAPSHOT}{mount.source}"
            readers.setdefault(key, []).append(f"{service.service}:{mount.target}")
    return readers
