"""Named volumes and paths outside the stack in an in-place restore (tasks/backup/sources.py
names them; tasks/restore/in_place.py swaps them in with the stack's own paths).

A volume is written through Docker (tasks/clients/docker_volumes.py) while the services that
mount it are stopped: its current content is kept first as
``.sbx/restores/<time>/volumes/<name>.tar`` (what a swap back writes again), then the volume is
emptied and the staged ``volumes/<name>/`` unpacked into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sbx.repository.format import PartRecord
from tasks.backup.sources import OUTSIDE, VOLUMES
from tasks.backup.volumes import pack
from tasks.clients.docker_volumes import connect as connect_volumes
from tasks.restore.kept import kept_dir


class VolumeRestore(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    image: str
    staged: str  # the staged volumes/<name> directory


def captured_sources(part: PartRecord) -> list[dict[str, Any]]:
    return [s for s in part.detail.get("sources", []) if s.get("status") == "captured"]


def outside_paths(part: PartRecord, staging: Path) -> dict[str, str]:
    """snapshot path (outside/<abs>) -> live absolute path, for the part's captured outside
    sources (one on another file system is carried beside itself first: carry.py)."""
    found = {}
    for src in captured_sources(part):
        stored = str(src.get("stored_as", ""))
        if stored.startswith(f"{OUTSIDE}/"):
            found[stored] = str(src["from"])
    return found


def volume_restores(part: PartRecord, staging: Path) -> list[VolumeRestore]:
    return [
        VolumeRestore(name=src["from"], image=src["image"], staged=str(staging / src["stored_as"]))
        for src in captured_sources(part)
        if src.get("kind") == "volume"
        and src.get("image")
        and (staging / src["stored_as"]).is_dir()
    ]


def services_of(part: PartRecord) -> set[str]:
    return {svc for src in captured_sources(part) for svc in src.get("services") or []}


def swap_volumes(volumes: list[VolumeRestore], stack: Path, stamp: str) -> dict[str, str]:
    """Write each staged volume into its Docker volume (services already stopped); returns
    volume name -> the tar of what it held before (kept, for a swap back)."""
    aside: dict[str, str] = {}
    if not volumes:
        return aside
    keep = kept_dir(stack, stamp) / VOLUMES
    keep.mkdir(parents=True, exist_ok=True)
    with connect_volumes() as docker_volumes:
        try:
            for volume in volumes:
                before = keep / f"{volume.name}.tar"
                docker_volumes.read_to_tar(volume.name, volume.image, before)
                aside[volume.name] = str(before)
                restored = Path(f"{volume.staged}.tar")
                pack(Path(volume.staged), restored)
                docker_volumes.replace_from_tar(volume.name, volume.image, restored)
        except BaseException:
            # all volumes or none: those already written get their old content back
            for volume in volumes:
                if volume.name in aside:
                    docker_volumes.replace_from_tar(
                        volume.name, volume.image, Path(aside[volume.name]), at="/"
                    )
            raise
    return aside


def swap_volumes_back(volumes: list[VolumeRestore], aside: dict[str, str]) -> None:
    with connect_volumes() as docker_volumes:
        for volume in volumes:
            if volume.name in aside:
                # the kept tar holds the mount point's own directory: unpacked at /
                docker_volumes.replace_from_tar(
                    volume.name, volume.image, Path(aside[volume.name]), at="/"
                )
