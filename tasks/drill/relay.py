"""How a drill's restored consumers reach a live GPU service that is not started a second time.

Each GPU service the drill holds back (tasks/drill/gpu.py) gets a relay in the scratch project:
``tasks/drill/relay_server.py`` run with ``python3`` in the live service's own image, attached
to the scratch networks under the GPU service's name (so ``http://worker:8000/v1`` in a restored
env file reaches it unchanged) and to the live project's network, where it forwards GET and HEAD
to the live container by its unique name and refuses everything else. Its healthcheck calls
/health through itself: "healthy" means the live service is reached.

Why a relay (measured on Docker 20.10 with the example stack):
- ``extra_hosts: worker:host-gateway`` reaches the host's docker0 address, where a port
  published on 127.0.0.1 (every service of a sealed box but its proxy) refuses the connection;
- attaching the consumers themselves to the live network would let Docker's DNS answer a name
  from either network: a scratch sibling whose container is not (or no longer) running, say
  ``qdrant``, would resolve to the live one, and the restored Open WebUI would write into the
  live Qdrant. The relay is the only scratch container on the live network, it resolves one
  name there, and it passes only reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from blocks.config import SbxConfig
from tasks.drill.gpu import HeldBack
from tasks.health.context import read_context

RELAY_FILE = ".sbx-drill-relay.py"  # in the scratch stack, beside the drill's override
RELAY_MOUNT = "/sbx-drill-relay.py"
NOT_STARTED_PROFILE = "sbx-drill-not-started"  # a profile no drill activates
UNREACHABLE_NETWORKS = ("host", "none")


def relay_name(service: str) -> str:
    return f"sbx-live-{service}"


def find_live(config: SbxConfig, held: list[HeldBack]) -> list[HeldBack]:
    """Each held-back service with the live container its relay forwards to (its name, a
    network of it, its image), read from the live stack: one ``compose config``, one container
    listing, nothing else. A service whose live container is not running gets no relay."""
    ctx = read_context(config)
    by_compose = {t.config.compose_service: t for t in ctx.services.values()}
    found = []
    for service in held:
        target = by_compose.get(service.service)
        info = target.container if target else None
        networks = [n for n in info.networks if n not in UNREACHABLE_NETWORKS] if info else []
        if info is None or not info.running or not networks or not service.ports:
            found.append(service)
            continue
        network = next((n for n in networks if n.endswith("_default")), networks[0])
        found.append(
            service.model_copy(
                update={
                    "live_container": info.name,
                    "live_network": network,
                    "live_image": info.image_id or info.image_ref,
                    "relay": relay_name(service.service),
                }
            )
        )
    return found


def place_relay(stack_dir: Path) -> Path:
    """The relay script copied into the scratch stack (removed with it)."""
    script = stack_dir / RELAY_FILE
    shutil.copyfile(Path(__file__).with_name("relay_server.py"), script)
    script.chmod(0o644)
    return script


def relay_services(held: list[HeldBack], labels: dict[str, str], script: Path) -> list[str]:
    """Override lines (under ``services:``) of one relay per held-back service with a live
    container; each entry is JSON, which YAML reads as it is."""
    lines = []
    for service in held:
        if service.relay is None or service.live_network is None:
            continue
        networks: dict[str, Any] = {n: {"aliases": [service.service]} for n in service.networks}
        networks[live_network_key(held, service.live_network)] = {}
        spec = {
            "image": service.live_image,
            "pull_policy": "never",  # the live container's own image: on the box already
            "entrypoint": ["python3", "-u", RELAY_MOUNT],
            "environment": {
                "SBX_RELAY_TARGET": service.live_container,
                "SBX_RELAY_PORTS": ",".join(str(p) for p in service.ports),
                "SBX_RELAY_SERVICE": service.service,
            },
            "volumes": [
                {"type": "bind", "source": str(script), "target": RELAY_MOUNT, "read_only": True}
            ],
            "networks": networks,
            "restart": "no",
            "healthcheck": {
                "test": ["CMD", "python3", RELAY_MOUNT, "--check"],
                "interval": "2s",
                "timeout": "5s",
                "retries": 3,
                "start_period": "30s",
            },
            "labels": labels,
        }
        lines.append(f"  {json.dumps(service.relay)}: {json.dumps(spec)}")
    return lines


def live_networks(held: list[HeldBack]) -> list[str]:
    """Override lines of the top-level ``networks:`` the relays join: the live networks,
    external (compose neither creates nor removes them)."""
    names = sorted({s.live_network for s in held if s.relay and s.live_network})
    if not names:
        return []
    lines = ["networks:"]
    for name in names:
        spec = {"external": True, "name": name}
        lines.append(f"  {json.dumps(live_network_key(held, name))}: {json.dumps(spec)}")
    return lines


def live_network_key(held: list[HeldBack], network: str) -> str:
    names = sorted({s.live_network for s in held if s.relay and s.live_network})
    return f"sbx-live-{names.index(network)}"


def depends_on_lines(spec: dict[str, Any], held: dict[str, HeldBack]) -> list[str]:
    """A consumer's ``depends_on`` with each held-back service replaced by its relay (or left
    out where none runs), so compose neither starts nor waits for the GPU service."""
    deps: dict[str, Any] = spec.get("depends_on") or {}
    if not any(name in held for name in deps):
        return []
    kept = {name: dep for name, dep in deps.items() if name not in held}
    for name in deps:
        relay = held[name].relay if name in held else None
        if relay:
            kept[relay] = {"condition": "service_started", "required": True}
    return [f"    depends_on: !override {json.dumps(kept)}"]
