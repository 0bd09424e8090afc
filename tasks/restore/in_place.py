"""Swapping verified, staged data into the live stack — and back when the result is unhealthy.

Order of an in-place restore (flows/restore.py): the snapshot is restored into
``<stack>/.sbx/restore-<id>/`` first (every byte verified there); only then are the affected
services stopped, each live path renamed aside into ``<stack>/.sbx/restores/<UTC time>/<path>``
and the staged path renamed into its place (same file system, so each rename is atomic; where
the old data goes and how it is removed: kept.py), and the services started again — always,
also on failure. Qdrant captured through its snapshot API is recovered through the API, after
the current collections were snapshotted aside. Logs never go over live logs: the snapshot's
copy lands in ``.sbx/restores/<UTC time>/logs.restored``.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import ConsistencyMethod, SbxConfig
from sbx.errors import RestoreRefused
from sbx.repository import SnapshotManifest
from sbx.repository.format import PartRecord
from tasks.backup.methods import QDRANT_SNAPSHOT_DIR
from tasks.backup.sources import OUTSIDE, covered_below
from tasks.clients.docker_engine import connect as connect_docker
from tasks.restore.kept import (
    aside_path,
    holds_sbx_state,
    kept_dir,
    note_kept_elsewhere,
    shown_path,
)
from tasks.restore.qdrant_swap import take_aside_and_recover
from tasks.restore.swap_journal import swap_paths
from tasks.restore.volumes import (
    VolumeRestore,
    captured_sources,
    outside_paths,
    services_of,
    swap_volumes,
    swap_volumes_back,
    volume_restores,
)
from tasks.services import stopped_service
from tasks.status import StackStatus


class SwapPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    paths: list[str]  # stack-relative paths swapped whole
    services: list[str]  # compose services stopped around the swap
    side_paths: dict[str, str]  # staged path -> side directory (logs)
    qdrant: dict[str, str]  # collection -> staged snapshot file (recovered through the API)
    qdrant_sha256: dict[str, str] = {}  # collection -> its file's sha256, where recorded
    qdrant_service: str | None
    configs: bool  # compose files or env changed: `compose up -d` afterwards
    # staged outside/<abs> (or, carried to another file system, an absolute path) -> live path
    outside: dict[str, str] = {}
    volumes: list[VolumeRestore] = []  # named volumes written through Docker

    def carried_dirs(self) -> list[Path]:
        """The directories copies carried to another file system wait in (carry.py)."""
        return sorted({Path(s).parent for s in self.outside if Path(s).is_absolute()})


class Swapped(BaseModel):
    model_config = ConfigDict(frozen=True)

    moved: list[tuple[str, str | None]]  # (live path, where the old one went or None if new)
    side: list[str]
    qdrant_aside: dict[str, str]  # collection -> pre-restore snapshot file
    stamp: str = ""  # the restore's directory: .sbx/restores/<stamp>
    volumes_aside: dict[str, str] = {}  # volume -> tar of its pre-restore content

    def kept_paths(self, stack_dir: Path) -> list[str]:
        """Every path this restore left for the operator, relative to the stack (absolute
        where it lies elsewhere)."""
        paths = [aside for _, aside in self.moved if aside] + self.side
        paths += [shown_path(Path(tar), stack_dir) for tar in self.volumes_aside.values()]
        files = [Path(file) for file in self.qdrant_aside.values()]
        dirs = sorted({str(file.parent.relative_to(stack_dir)) for file in files})
        return paths + dirs


def plan_swap(
    manifest: SnapshotManifest, parts: list[str] | None, config: SbxConfig, staging: Path
) -> SwapPlan:
    chosen = [
        p for p in manifest.parts if p.status == "captured" and (not parts or p.name in parts)
    ]
    paths: list[str] = []
    services: set[str] = set()
    side: dict[str, str] = {}
    qdrant: dict[str, str] = {}
    qdrant_sha256: dict[str, str] = {}
    qdrant_service = None
    configs = False
    outside: dict[str, str] = {}
    volumes: list[VolumeRestore] = []
    for part in chosen:
        part_config = config.parts.get(part.name)
        tops = _tops(part, config)
        staged = [p for p in tops if (staging / p).exists() or (staging / p).is_symlink()]
        service = part_config.service if part_config else None
        compose_service = (
            config.services[service].compose_service
            if service and service in config.services
            else service
        )
        if part.detail.get("mode") == "docker-volume":
            volumes += volume_restores(part, staging)
            services |= services_of(part)
            continue
        found_outside = outside_paths(part, staging)
        if found_outside:
            outside.update(found_outside)
            services |= services_of(part)
        if part.detail.get("mode") == "snapshot-api":
            qdrant_service = compose_service
            sums = {e.path: e.sha256 for e in part.entries if e.sha256}
            for name in part.detail.get("collections", {}):
                rel = f"{tops[0]}/{QDRANT_SNAPSHOT_DIR}/{name}.snapshot"
                qdrant[name] = str(staging / rel)
                if rel in sums:
                    qdrant_sha256[name] = sums[rel]
        elif part_config and part_config.method is ConsistencyMethod.GROWING_LOG:
            side.update({p: f"{p}.restored" for p in staged})
        else:
            paths += staged
            if compose_service:
                services.add(compose_service)
            if staged:
                services |= services_of(part)
            configs = configs or part.name == "configs"
    return SwapPlan(
        paths=paths,
        services=sorted(services),
        side_paths=side,
        qdrant=qdrant,
        qdrant_sha256=qdrant_sha256,
        qdrant_service=qdrant_service,
        configs=configs,
        outside=outside,
        volumes=volumes,
    )


def _tops(part: PartRecord, config: SbxConfig) -> list[str]:
    """The part's paths in the stack: configured, and what the compose model added to it."""
    part_config = config.parts.get(part.name)
    if part_config is None:
        return sorted({e.path.split("/")[0] for e in part.entries})
    added = [
        str(src["stored_as"])
        for src in captured_sources(part)
        if src.get("kind") != "volume"
        and src.get("stored_as")
        and not str(src["stored_as"]).startswith(f"{OUTSIDE}/")
        and not _under(str(src["stored_as"]), part_config.paths)
    ]
    return [*part_config.paths, *added]


def _under(rel: str, paths: list[str]) -> bool:
    return any(rel == p or rel.startswith(f"{p.rstrip('/')}/") for p in paths)


def check_swappable(manifest: SnapshotManifest, parts: list[str] | None, config: SbxConfig) -> None:
    """Refuse, before anything is staged, a live path a swap by rename cannot replace.

    A mount point cannot be renamed aside, and renaming a link to a directory aside would put
    the restored data on the stack's disk instead of the one the link leads to.
    """
    stack = config.stack_dir
    for part in manifest.parts:
        if part.status != "captured" or (parts and part.name not in parts):
            continue
        tops = _tops(part, config)
        tops += [s["from"] for s in captured_sources(part) if s["stored_as"].startswith(OUTSIDE)]
        for rel in tops:
            live = stack / rel
            added = part.name in config.parts and rel not in config.parts[part.name].paths
            if added and not Path(rel).is_absolute() and covered_below(config, rel) - {".sbx"}:
                raise RestoreRefused(
                    f"{live} (part {part.name!r}) holds paths of other parts, so an in-place "
                    f"restore cannot swap it whole. Restore it with 'sbx restore {manifest.id} "
                    f"--part {part.name} --to DIR' instead. Nothing was changed."
                )
            if holds_sbx_state(rel):
                raise RestoreRefused(
                    f"Part {part.name!r} has the path {rel!r}, which holds sbx's own .sbx "
                    "directory (its restores and swap journal): an in-place restore cannot rename "
                    f"it aside. Restore it with 'sbx restore {manifest.id} --part {part.name} "
                    "--to DIR' instead, or give the part narrower paths. Nothing was changed."
                )
            if live.is_symlink() or os.path.ismount(live):
                what = "a symlink" if live.is_symlink() else "a mount point"
                raise RestoreRefused(
                    f"{live} (part {part.name!r}) is {what}, which an in-place restore cannot "
                    "swap by renaming. Stop the stack and restore that part with "
                    f"'sbx restore {manifest.id} --part {part.name} --to DIR', then move its "
                    "contents there. Nothing was changed."
                )


@task(name="swap-in-restored-data", cache_policy=NO_CACHE)
def swap_in(
    plan: SwapPlan, config: SbxConfig, status: StackStatus, staging: Path, stamp: str
) -> Swapped:
    """Stop the plan's services, rename live paths aside and staged ones in, start them again."""
    stack = config.stack_dir
    moved: list[tuple[str, str | None]] = []
    with connect_docker() as engine, ExitStack() as running_again:
        for service in plan.services:
            running_again.enter_context(
                stopped_service(
                    engine, stack, status.project, service, reason="sbx restore --in-place: swap"
                )
            )
        renames: list[tuple[Path, Path]] = []
        for rel in plan.paths:
            live = stack / rel
            had_live = live.exists() or live.is_symlink()
            aside = aside_path(stack, rel, stamp) if had_live else live
            if had_live:
                renames.append((live, aside))
            renames.append((staging / rel, live))
            moved.append((rel, str(aside.relative_to(stack)) if had_live else None))
        for stored, live_path in plan.outside.items():
            live = Path(live_path)
            had_live = live.exists() or live.is_symlink()
            aside = aside_path(stack, live_path, stamp) if had_live else live
            if had_live:
                renames.append((live, aside))
                if not aside.is_relative_to(stack):
                    note_kept_elsewhere(stack, aside.parent.parent)
            renames.append((staging / stored, live))  # a carried copy's path is absolute
            moved.append((live_path, shown_path(aside, stack) if had_live else None))
        # volumes first: a volume that cannot be written leaves every path as it was
        volumes_aside = swap_volumes(plan.volumes, stack, stamp)
        # all paths or none, also across a kill: the stack never holds a mix of old and new
        discard = [staging, *plan.carried_dirs()]
        swap_paths(stack, renames, f"in-place restore ({stamp})", discard=discard)
    side = []
    for rel, target in plan.side_paths.items():
        dest = kept_dir(stack, stamp) / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).rename(dest)
        side.append(str(dest.relative_to(stack)))
    qdrant_aside = (
        take_aside_and_recover(
            plan.qdrant_service, plan.qdrant, plan.qdrant_sha256, status, stack, stamp
        )
        if plan.qdrant
        else {}
    )
    return Swapped(
        moved=moved,
        side=side,
        qdrant_aside=qdrant_aside,
        stamp=stamp,
        volumes_aside=volumes_aside,
    )


@task(name="swap-back-previous-data", cache_policy=NO_CACHE)
def swap_back(
    swapped: Swapped, plan: SwapPlan, config: SbxConfig, status: StackStatus, stamp: str
) -> None:
    """Undo :func:`swap_in`: restored data to ``.sbx/restores/<time>/<path>.failed-restore``.

    Qdrant's collections come back after (qdrant_swap.recover_previous_collections), once
    the services run on the previous configuration again: its key may have changed with it.
    """
    stack = config.stack_dir
    with connect_docker() as engine, ExitStack() as running_again:
        for service in plan.services:
            running_again.enter_context(
                stopped_service(
                    engine, stack, status.project, service, reason="sbx restore: swap back"
                )
            )
        renames = []
        for rel, aside in swapped.moved:
            renames.append((stack / rel, aside_path(stack, rel, stamp, ".failed-restore")))
            if aside is not None:
                renames.append((stack / aside, stack / rel))
        swap_paths(stack, renames, f"swap back of an in-place restore ({stamp})", discard=[])
        swap_volumes_back(plan.volumes, swapped.volumes_aside)


def remove_staging(staging: Path) -> None:
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
