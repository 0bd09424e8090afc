"""Qdrant's API keys from the configuration files its container reads, as upstream merges them.

Qdrant (``src/settings.rs``) builds its settings from, in order, each overriding the last:
``config/config``, ``config/<RUN_MODE>`` (the image sets ``RUN_MODE=production``), ``config/local``
(each as ``.yaml``, ``.yml``, ``.json`` or ``.toml``, relative to its working directory
``/qdrant``), the file given with ``--config-path``, then ``QDRANT__*`` variables. A box that
keeps its key in a mounted ``production.yaml`` shows no key in its compose file; this reads the
host files behind the service's bind mounts the same way. The variables still win
(tasks/keys.py).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tasks.clients.compose import ComposeService

WORKDIR = PurePosixPath("/qdrant")
IMAGE_RUN_MODE = "production"  # the qdrant/qdrant image's ENV RUN_MODE
EXTENSIONS = (".yaml", ".yml", ".json", ".toml")


def qdrant_file_keys(service: ComposeService, command_path: str | None) -> dict[str, str]:
    """``api_key`` / ``read_only_api_key`` of the service section, the last file winning."""
    run_mode = service.environment.get("RUN_MODE", IMAGE_RUN_MODE)
    names = ["config/config", f"config/{run_mode}", "config/local"]
    found: dict[str, str] = {}
    candidates = [_first_existing(service, WORKDIR / name) for name in names]
    if command_path:
        path = PurePosixPath(command_path)
        candidates.append(_on_host(service, path if path.is_absolute() else WORKDIR / path))
    for host in candidates:
        if host is None:
            continue
        section = _read(host).get("service")
        if not isinstance(section, dict):
            continue
        for field in ("api_key", "read_only_api_key"):
            value = section.get(field)
            if isinstance(value, str):
                found[field] = value
    return found


def _first_existing(service: ComposeService, stem: PurePosixPath) -> Path | None:
    for ext in EXTENSIONS:
        host = _on_host(service, stem.with_name(stem.name + ext))
        if host is not None:
            return host
    return None


def _on_host(service: ComposeService, inside: PurePosixPath) -> Path | None:
    """The host file a bind mount shows at ``inside`` in the container, when it exists."""
    best = None
    for mount in service.mounts:
        target = PurePosixPath(mount.target)
        shown = mount.type == "bind" and (inside == target or target in inside.parents)
        # the deepest mount shadows the ones above it
        if shown and (best is None or len(target.parts) > len(PurePosixPath(best.target).parts)):
            best = mount
    if best is None:
        return None
    host = Path(best.source) / inside.relative_to(PurePosixPath(best.target))
    return host if host.is_file() else None


def _read(path: Path) -> dict[str, Any]:
    """The file's settings; one sbx cannot read counts as empty (Qdrant would fail to start
    on it, which the health check then says)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data: object = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
