"""The tasks an upgrade or rollback starts with: finish an entry a killed run left open, record
the release running now (the one to return to), pull the images whose tags moved."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import UpgradeRefused
from tasks.clients.docker_engine import connect
from tasks.upgrade.journal import JournalEntry, Release, ServiceImage
from tasks.upgrade.release import (
    check_rollback_images,
    newer_images,
    pull_targets,
    record_release,
)
from tasks.upgrade.steps import reconcile_open_entry

log = logging.getLogger("sbx.upgrade")


@task(name="reconcile-upgrade", cache_policy=NO_CACHE)
def reconcile_upgrade(config: SbxConfig) -> JournalEntry | None:
    """Finish a journal entry a killed upgrade left open (return to its recorded release)."""
    return reconcile_open_entry(config)


@task(name="record-release", cache_policy=NO_CACHE)
def record_current_release(config: SbxConfig, services: list[str] | None) -> tuple[str, Release]:
    """Each service's image by digest, compose and env hashes, model settings; checks that every
    image to return to is present locally (refuses otherwise, before anything changed)."""
    with connect() as engine:
        project, release = record_release(config, engine, services)
        check_rollback_images(engine, release)
    return project, release


@task(name="pull-images", cache_policy=NO_CACHE)
def pull_images(release: Release) -> dict[str, ServiceImage]:
    """Pull every service's tag; returns the services whose tag moved, pinned by digest."""
    with connect() as engine:
        return pull_targets(engine, release)


@task(name="check-rollback-images", cache_policy=NO_CACHE)
def check_images_present(release: Release) -> None:
    """Refuse (before anything changes) when an image to return to is not present locally."""
    with connect() as engine:
        check_rollback_images(engine, release)


@task(name="find-newer-images", cache_policy=NO_CACHE)
def find_newer_images(
    config: SbxConfig, services: list[str] | None
) -> tuple[Release, dict[str, tuple[str, str]]]:
    """The release running now and the services whose tag names a newer image in its registry."""
    with connect() as engine:
        _, release = record_release(config, engine, services)
        return release, newer_images(engine, release)


def compose_changes(recorded: Release, now: Release) -> list[str]:
    """The compose files whose hash differs between two releases (added or removed too)."""
    names = set(recorded.compose_files) | set(now.compose_files)
    return sorted(n for n in names if recorded.compose_files.get(n) != now.compose_files.get(n))


def check_compose_unchanged(upgrade: JournalEntry, now: Release, *, force: bool) -> None:
    """Refuse a rollback when a compose file changed since ``upgrade`` recorded it: the old
    images would go live with the edited file, unseen. ``force``: warn and go on."""
    changed = compose_changes(upgrade.before, now)
    if not changed:
        return
    what = (
        f"{', '.join(changed)} changed since upgrade {upgrade.id} "
        f"({upgrade.started_at:%Y-%m-%d %H:%M} UTC) recorded it"
    )
    if force:
        log.warning("%s; rolling back with the file as it is now (--force)", what)
        return
    raise UpgradeRefused(
        f"Rollback refused: {what}, and a rollback starts the old images with the edited file. "
        "Review the change ('git diff' or your copy), then run 'sbx rollback --force' to roll "
        "back anyway. Nothing was changed."
    )
