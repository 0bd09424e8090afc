"""The scratch compose project of a restore drill: a restored stack beside the live one.

The restored tree gets one more compose file, ``.sbx-drill.compose.yml``, that moves every
published port to a free loopback port Docker picks (``ports: !override`` with an empty host
port), drops fixed ``container_name``s (they would clash with the live containers) and labels
every container with the drill id. GPU services are not started a second time by default
(tasks/drill/gpu.py): the override puts them in a profile no drill activates and adds a
read-only relay to the live one in their place (tasks/drill/relay.py). Compose runs with an
explicit project name (``-p``) and explicit files (``-f``), so neither ``COMPOSE_PROJECT_NAME``/
``COMPOSE_FILE`` in the environment nor a restored ``.env`` can point it at the live project.
The live stack is never touched: no command here changes its project; it is read (its compose
model, its containers) only to find the live GPU services a relay reaches.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import ComposeConfig, SbxConfig
from sbx.errors import SbxError, StackError
from sbx.repository import SnapshotManifest
from sbx.stopping import note_undone
from tasks.clients.compose import (
    COMPOSE_FILE_NAMES,
    OVERRIDE_NAMES,
    ComposeCli,
    down_by_name,
    read_dotenv,
)
from tasks.drill.gpu import HeldBack, plan_held_back
from tasks.drill.marker import MARKER_DIR, DrillMarker, forget_drill
from tasks.drill.relay import (
    NOT_STARTED_PROFILE,
    depends_on_lines,
    find_live,
    live_networks,
    place_relay,
    relay_services,
)

log = logging.getLogger("sbx.drill")

OVERRIDE_FILE = ".sbx-drill.compose.yml"
DRILL_LABEL = "sbx.drill"


class ScratchProject(BaseModel):
    """Where a drill restores to and the compose project it starts there."""

    model_config = ConfigDict(frozen=True)

    root: Path  # removed after the drill
    stack_dir: Path  # root/stack: the restored tree
    project: str
    drill_id: str
    files: list[str] = []  # absolute compose files, the drill override last (once written)
    held_back: list[HeldBack] = []  # GPU services not started here (once planned)

    def compose(self, timeout_s: float = 300) -> ComposeCli:
        return ComposeCli(
            self.stack_dir, project=self.project, files=self.files, timeout_s=timeout_s
        )


def plan_scratch(config: SbxConfig, drill_id: str) -> ScratchProject:
    base = config.drill.scratch_dir or config.stack_dir / ".sbx" / "drills"
    root = base.expanduser().absolute() / drill_id
    return ScratchProject(
        root=root,
        stack_dir=root / "stack",
        project=f"sbx-drill-{drill_id.lower()}",
        drill_id=drill_id,
    )


def scratch_config(config: SbxConfig, scratch: ScratchProject) -> SbxConfig:
    """The live configuration pointed at the scratch project: its directory, project and files;
    service URLs come from the scratch containers' published ports, never from sbx.toml."""
    held = {h.service for h in scratch.held_back}  # checked against the live stack instead
    services = {
        name: svc.model_copy(
            update={"url": None, "enabled": svc.enabled and svc.compose_service not in held}
        )
        for name, svc in config.services.items()
    }
    return config.model_copy(
        update={
            "stack_dir": scratch.stack_dir,
            "compose": ComposeConfig(project=scratch.project, files=scratch.files),
            "services": services,
        }
    )


def compose_files(config: SbxConfig, stack_dir: Path) -> list[str]:
    """The restored stack's compose files: those sbx.toml names, else the restored ``.env``'s
    COMPOSE_FILE (read in the restored tree: a box's overrides, the example's stand-in images),
    else compose's defaults. Never the environment's COMPOSE_FILE, which names the live stack's
    files; an absolute entry would too, and is refused."""
    names = list(config.compose.files)
    if not names:
        listed = read_dotenv(stack_dir / ".env").get("COMPOSE_FILE", "")
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        names = [n for n in listed.split(separator) if n]
    if not names:
        names = [n for n in COMPOSE_FILE_NAMES if (stack_dir / n).is_file()][:1]
        names += [n for n in OVERRIDE_NAMES if (stack_dir / n).is_file()][:1]
    outside = [n for n in names if Path(n).is_absolute()]
    if outside:
        raise StackError(
            f"The restored stack names compose files by absolute path ({', '.join(outside)}): "
            "the drill would start the live stack's files. Name them relative to the stack "
            "directory in COMPOSE_FILE or [compose] files."
        )
    files = [stack_dir / n for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise StackError(
            f"The restored stack in {stack_dir} lacks its compose files "
            f"({', '.join(missing) or ', '.join(COMPOSE_FILE_NAMES)}): check that the snapshot's "
            "configs part holds them, and [compose] files in sbx.toml or COMPOSE_FILE in .env."
        )
    return [str(f) for f in files]


def restored_mounts(manifest: SnapshotManifest) -> dict[str, str]:
    """``service <name>: <target>`` -> where the snapshot holds that mount's data, for the
    mounts stored outside the stack's own layout (``outside/…`` and ``volumes/…``)."""
    return {
        str(src["origin"]): str(src["stored_as"])
        for part in manifest.parts
        if part.status == "captured"
        for src in part.detail.get("sources", [])
        if src.get("status") == "captured"
        and str(src.get("stored_as", "")).startswith(("outside/", "volumes/"))
        and src.get("kind") in ("bind", "volume")
    }


def place_outside_files(manifest: SnapshotManifest, live_stack: Path, scratch: Path) -> None:
    """Files compose reads outside the stack (an ``env_file: ../x.env``) put where the restored
    compose file looks for them, relative to the scratch stack, when that lies in the scratch
    directory; an absolute reference keeps reading the live file (read-only)."""
    for part in manifest.parts:
        for src in part.detail.get("sources", []):
            stored = str(src.get("stored_as", ""))
            if src.get("kind") not in ("env-file", "compose-file"):
                continue
            if not stored.startswith("outside/") or src.get("status") != "captured":
                continue
            rel = os.path.relpath(str(src["from"]), live_stack)
            where = Path(os.path.normpath(scratch / rel))
            if where.is_relative_to(scratch.parent) and not where.exists():
                where.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(scratch / stored, where)


def override_yaml(
    resolved: dict[str, Any],
    drill_id: str,
    mounts: dict[str, str] | None = None,
    stack_dir: Path | None = None,
    held_back: list[HeldBack] | None = None,
    relay_script: Path | None = None,
) -> str:
    """The drill's compose override for the resolved model (`docker compose config` JSON).

    ``mounts`` (:func:`restored_mounts`): each bind mount outside the stack and each named
    volume becomes a bind mount of the restored copy in ``stack_dir``, so the scratch project
    never mounts the live box's paths or volumes (an external volume has a fixed name).
    ``held_back``: services not started (a profile no drill activates), consumers' depends_on
    pointed at their relays, the relays themselves (``relay_script`` mounted into each)."""
    held = {h.service: h for h in held_back or []}
    lines = ["# written by sbx drill: free loopback ports, no fixed names, labelled", "services:"]
    for name, spec in sorted((resolved.get("services") or {}).items()):
        lines.append(f"  {json.dumps(name)}:")
        if name in held:
            lines.append(f"    profiles: [{json.dumps(NOT_STARTED_PROFILE)}]")
        lines += depends_on_lines(spec, held)
        lines += _volume_lines(name, spec, mounts or {}, stack_dir)
        ports = spec.get("ports") or []
        if ports:
            lines.append("    ports: !override")
            for port in ports:
                target, protocol = port.get("target"), port.get("protocol") or "tcp"
                lines.append(f'      - "127.0.0.1::{target}/{protocol}"')
        if spec.get("container_name"):
            lines.append("    container_name: !reset null")
        lines += ["    labels:", f"      {DRILL_LABEL}: {json.dumps(drill_id)}"]
    if relay_script is not None:
        lines += relay_services(list(held.values()), {DRILL_LABEL: drill_id}, relay_script)
    lines += live_networks(list(held.values()))
    return "\n".join(lines) + "\n"


def _volume_lines(
    service: str, spec: dict[str, Any], mounts: dict[str, str], stack_dir: Path | None
) -> list[str]:
    entries = spec.get("volumes") or []
    moved = [mounts.get(f"service {service}: {e.get('target')}") for e in entries]
    if stack_dir is None or not any(moved):
        return []
    lines = ["    volumes: !override"]
    for entry, stored in zip(entries, moved, strict=True):
        bind = {
            "type": "bind",
            "source": str(stack_dir / (stored or "")),
            "target": entry.get("target"),
            "read_only": bool(entry.get("read_only")),
        }
        lines.append(f"      - {json.dumps(bind if stored else entry)}")
    return lines


@task(name="prepare-scratch-project", cache_policy=NO_CACHE)
def prepare_project(
    config: SbxConfig, scratch: ScratchProject, manifest: SnapshotManifest | None = None
) -> ScratchProject:
    """Write the drill override into the restored tree; returns the project with its files and
    the GPU services it does not start (each with the live container its relay reaches)."""
    if manifest is not None:
        place_outside_files(manifest, config.stack_dir, scratch.stack_dir)
    files = compose_files(config, scratch.stack_dir)
    planned = scratch.model_copy(update={"files": files})
    resolved = json.loads(planned.compose().run("config", "--format", "json").stdout)
    override = scratch.stack_dir / OVERRIDE_FILE
    mounts = restored_mounts(manifest) if manifest is not None else {}
    held = plan_held_back(resolved, config.drill, scratch.stack_dir, mounts)
    if held:
        held = find_live(config, held)  # the live stack, read only
        for service in held:
            log.info("drill: %s not started (%s)", service.service, service.reason)
    script = place_relay(scratch.stack_dir) if any(h.relay for h in held) else None
    text = override_yaml(resolved, scratch.drill_id, mounts, scratch.stack_dir, held, script)
    override.write_text(text, encoding="utf-8")
    return scratch.model_copy(update={"files": [*files, str(override)], "held_back": held})


@task(name="start-scratch-project", cache_policy=NO_CACHE)
def start_project(scratch: ScratchProject) -> None:
    """``up -d`` of the scratch project (health is awaited by the drill, with its own timeout)."""
    scratch.compose().up(wait=False)


@task(name="tear-down-scratch-project", cache_policy=NO_CACHE)
def tear_down(scratch: ScratchProject) -> list[str]:
    """``down -v`` of the scratch project, then the scratch directory removed; never raises.

    Returns what could not be cleaned up (empty when everything is gone).
    """
    problems = []
    if scratch.files and scratch.stack_dir.is_dir():
        try:
            done = scratch.compose(timeout_s=180).run(
                "down", "-v", "--remove-orphans", "-t", "5", check=False
            )
            if done.returncode != 0:
                problems.append(f"compose down of {scratch.project}: {done.stderr.strip()[-300:]}")
        except SbxError as exc:
            problems.append(f"compose down of {scratch.project}: {exc}")
    shutil.rmtree(scratch.root, ignore_errors=True)
    if scratch.root.exists():
        problems.append(f"scratch directory {scratch.root} could not be removed")
    for problem in problems:
        log.warning("drill clean-up: %s", problem)
    note_undone(f"tore down drill project {scratch.project}")  # listed when a stop is in flight
    return problems


def tear_down_abandoned(stack_dir: Path, marker: DrillMarker) -> list[str]:
    """Tear down the scratch project of a drill whose process is gone (a SIGKILL skipped its
    ``finally``): ``down -v`` by project name (its compose files may be gone with the scratch
    directory), then the directory; the marker goes once both are gone, so a failure is tried
    again by the next command. Returns what could not be cleaned up."""
    problems = []
    try:
        status, stderr = down_by_name(marker.project, stack_dir / MARKER_DIR)
        if status != 0:
            problems.append(f"compose down of {marker.project}: {stderr.strip()[-300:]}")
    except SbxError as exc:
        problems.append(f"compose down of {marker.project}: {exc}")
    shutil.rmtree(marker.root, ignore_errors=True)
    if marker.root.exists():
        problems.append(f"scratch directory {marker.root} could not be removed")
    if not problems:
        forget_drill(stack_dir, marker.drill_id)
    for problem in problems:
        log.warning("clean-up of killed drill %s: %s", marker.drill_id, problem)
    return problems
