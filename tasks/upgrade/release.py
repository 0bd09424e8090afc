"""Releases of the stack's services: record what runs, pull what is new, switch by digest.

The decide/act split of an upgrade: :func:`record_release` and :func:`pull_targets` only read
and pull; :func:`switch_images` is the one step that changes running state, and it always runs
images by ``repo@sha256:…`` through the pins override (``<stack>/.sbx/upgrade/pins.yml``), so a
rollback can never land on a tag that meanwhile points at the new image.
"""

from __future__ import annotations

import hashlib
import logging

from blocks.config import SbxConfig
from sbx.errors import UpgradeRefused
from tasks.backup.box_state import read_model_settings
from tasks.clients.compose import COMPOSE_FILE_NAMES, ComposeCli, effective_files
from tasks.clients.docker_engine import ContainerInfo, DockerEngine
from tasks.status import _split_by_directory, compose_for
from tasks.upgrade.journal import (
    JOURNAL_DIR,
    PINS,
    Release,
    ServiceImage,
    env_fingerprints,
    write_pins,
)

log = logging.getLogger("sbx.upgrade")


def repository_of(ref: str) -> str:
    """``host:5000/name`` of ``host:5000/name:tag`` or ``host:5000/name@sha256:…``."""
    if "@" in ref:
        return ref.split("@", 1)[0]
    head, _, tail = ref.rpartition(":")
    return head if head and "/" not in tail else ref


def _pinned(digests: list[str], ref: str) -> str | None:
    repo = repository_of(ref)
    return next((d for d in digests if d.split("@", 1)[0] == repo), None)


def record_release(
    config: SbxConfig, engine: DockerEngine, services: list[str] | None
) -> tuple[str, Release]:
    """The compose project and the release now running: each service's image by digest, compose
    and env file hashes, model settings. ``services`` default: every service whose image came
    from a registry (a local build has no digest to return to)."""
    model = compose_for(config).model()
    ours, _ = _split_by_directory(engine.project_containers(model.project), config.stack_dir)
    running: dict[str, ContainerInfo] = {}
    for c in ours:
        if c.service and (c.service not in running or c.running):
            running[c.service] = c
    unknown = [s for s in services or [] if s not in model.services]
    if unknown:
        raise UpgradeRefused(
            f"No service {', '.join(unknown)} in the compose project {model.project} (it has "
            f"{', '.join(model.services)}). Check the service names."
        )
    images = {}
    for name in services or sorted(model.services):
        ref = model.services[name].image or ""
        info = running.get(name)
        digest = _pinned(info.repo_digests, ref) if info else None
        if digest is None:
            if services:
                raise UpgradeRefused(
                    f"Cannot record a release to return to for {name}: "
                    + (
                        "it has no container"
                        if info is None
                        else f"its image {info.image_id[:19]} has no registry digest for {ref}"
                    )
                    + ". Start it from a registry image ('docker compose up -d') and try again."
                )
            log.info("%s: image %s has no registry digest; not upgraded", name, ref)
            continue
        images[name] = ServiceImage(
            service=name, image_ref=ref, digest=digest, image_id=info.image_id if info else None
        )
    stack = config.stack_dir
    compose_files = {
        name: hashlib.sha256((stack / name).read_bytes()).hexdigest()
        for name in dict.fromkeys([*COMPOSE_FILE_NAMES, *effective_files(stack, [])])
        if (stack / name).is_file()
    }
    release = Release(
        images=images,
        compose_files=compose_files,
        env_fingerprints=env_fingerprints(stack),
        models=read_model_settings(stack / "env"),
    )
    return model.project, release


def check_rollback_images(engine: DockerEngine, release: Release) -> None:
    """Refuse to go on unless every image of ``release`` is present locally by its digest."""
    missing = [
        f"{img.service} ({img.digest})"
        for img in release.images.values()
        if not engine.image_digests(img.digest)
    ]
    if missing:
        raise UpgradeRefused(
            f"The rollback image of {', '.join(missing)} is not present in the Docker engine; "
            "nothing was changed. Pull it again by digest ('docker pull <digest>') so a failed "
            "upgrade can return to it, then run 'sbx upgrade' again."
        )


def pull_targets(engine: DockerEngine, release: Release) -> dict[str, ServiceImage]:
    """Pull each service's tag; the services whose tag now names another digest, pinned."""
    targets = {}
    for name, img in release.images.items():
        digest = _pinned(engine.pull(img.image_ref), img.image_ref)
        if digest is None or digest == img.digest:
            log.info("%s: %s is current (%s)", name, img.image_ref, img.digest)
            continue
        targets[name] = ServiceImage(service=name, image_ref=img.image_ref, digest=digest)
    return targets


def newer_images(engine: DockerEngine, release: Release) -> dict[str, tuple[str, str]]:
    """service -> (running digest, registry digest) where the registry's tag moved (no pull)."""
    newer = {}
    for name, img in release.images.items():
        remote = f"{repository_of(img.image_ref)}@{engine.registry_digest(img.image_ref)}"
        if remote != img.digest:
            newer[name] = (img.digest, remote)
    return newer


def switch_images(
    config: SbxConfig, project: str, images: dict[str, str], *, force_recreate: bool = False
) -> None:
    """Pin ``images`` (service -> repo@sha256:…) and recreate those services (``up -d``).

    ``force_recreate``: new containers even when the pinned image already runs (incident
    containment throws away a container's writable layer, whatever image it runs)."""
    write_pins(config.stack_dir, images)
    files = [*effective_files(config.stack_dir, config.compose.files), str(JOURNAL_DIR / PINS)]
    compose = ComposeCli(config.stack_dir, project=project, files=files)
    log.info("switching %s", ", ".join(f"{s} to {d}" for s, d in sorted(images.items())))
    force = ["--force-recreate"] if force_recreate else []
    compose.run("up", "-d", "--no-deps", *force, *sorted(images))


def retag_local(engine: DockerEngine, images: dict[str, ServiceImage]) -> None:
    """Point each service's local tag back at its recorded digest: after a rollback, a plain
    'docker compose up' (without sbx's pins) must not start the image that just failed."""
    for img in images.values():
        if "@" not in img.image_ref:
            engine.tag(img.digest, img.image_ref)
