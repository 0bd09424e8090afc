"""The rule that data never goes into an older image than the one that wrote it.

Open WebUI's schema migrations are one-way: an older release on a newer ``webui.db`` fails its
alembic upgrade ("Can't locate revision identified by …"), logs it, and serves on a schema it
does not know. A Qdrant snapshot restores only into the same or the next minor version. Every
manifest records, per service, the version the running image reported and the data's own
version where it can be read (tasks/backup/box_state.py); a restore in place and a restore drill
compare them with what runs now and refuse an older image, naming both versions.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import RestoreRefused
from sbx.repository import SnapshotManifest
from sbx.repository.format import PartRecord
from tasks.backup.box_state import read_version
from tasks.clients.http_probe import HttpProbe
from tasks.health.model import CheckResult
from tasks.restore.volumes import services_of
from tasks.status import StackStatus

log = logging.getLogger("sbx.restore")

_NUMBERS = re.compile(r"v?(\d+(?:\.\d+)*)")


def version_key(text: str | None) -> tuple[int, ...] | None:
    """``0.3.35-standin`` -> (0, 3, 35); None when the text has no leading version number."""
    found = _NUMBERS.match(text.strip()) if text else None
    return tuple(int(n) for n in found.group(1).split(".")) if found else None


def running_versions(config: SbxConfig, status: StackStatus) -> dict[str, str | None]:
    """sbx service name -> the version its running image reports (None when it does not)."""
    versions: dict[str, str | None] = {}
    with HttpProbe(timeout_s=config.probe_timeout_s) as probe:
        for svc in status.services:
            kinds = ServiceKind.__members__.values()
            kind = ServiceKind(svc.kind) if svc.kind in kinds else None
            versions[svc.name] = read_version(probe, svc.url, kind) if svc.url and svc.ok else None
    return versions


def older_images(
    manifest: SnapshotManifest,
    parts: list[str] | None,
    config: SbxConfig,
    running: dict[str, str | None],
) -> dict[str, str]:
    """part -> what is wrong, for each restored part whose service now runs an older version
    than the one that wrote it."""
    recorded: dict[str, Any] = manifest.box.get("services", {}) if manifest.box else {}
    problems = {}
    for part in manifest.parts:
        if part.status != "captured" or (parts and part.name not in parts):
            continue
        found = []
        for service in part_services(part, config):
            wrote, now = recorded.get(service), running.get(service)
            if not isinstance(wrote, dict) or not _older(now, wrote.get("version")):
                continue
            data = f", data version {wrote['data_version']}" if wrote.get("data_version") else ""
            found.append(
                f"part {part.name!r} was written by {service} {wrote['version']}{data}; "
                f"{service} now runs {now}, an older image"
            )
        if found:
            problems[part.name] = "; ".join(found)
    return problems


def part_services(part: PartRecord, config: SbxConfig) -> list[str]:
    """The sbx services whose data ``part`` holds: its configured ``service``, or for a part
    the compose model fills (a named volume, a bind mount) the services that mount its sources
    (the stock Open WebUI compose file keeps webui.db in a volume)."""
    configured = config.parts[part.name].service if part.name in config.parts else None
    if configured:
        return [configured]
    mounted = services_of(part)
    return [name for name, svc in config.services.items() if svc.compose_service in mounted]


def _older(now: str | None, then: str | None) -> bool:
    now_key, then_key = version_key(now), version_key(then)
    return now_key is not None and then_key is not None and now_key < then_key


def check_data_versions(
    manifest: SnapshotManifest,
    parts: list[str] | None,
    config: SbxConfig,
    status: StackStatus,
    *,
    force: bool,
) -> list[str]:
    """Refuse (RestoreRefused) data into an older image; with ``force`` warn and go on.
    Returns the problems found (empty when none)."""
    problems = list(
        older_images(manifest, parts, config, running_versions(config, status)).values()
    )
    if not problems:
        return []
    if force:
        for problem in problems:
            log.warning("%s; restoring anyway (--force)", problem)
        return problems
    raise RestoreRefused(
        f"Restore of {manifest.id} refused: {'; '.join(problems)}. An older release cannot "
        "read data a newer one migrated (Open WebUI's migrations are one-way; a Qdrant snapshot "
        "restores into the same or the next minor version). Upgrade the service to the version "
        "that wrote the data first, or run again with --force to restore anyway. Nothing was "
        "changed."
    )


def drill_version_checks(
    manifest: SnapshotManifest, config: SbxConfig, status: StackStatus | None
) -> list[CheckResult]:
    """The drill's form of the rule: would this snapshot's data go into an older image than
    the one that wrote it, were it restored into the box as it runs now? One result a part."""
    if status is None:
        return []
    running = running_versions(config, status)
    return [
        CheckResult(
            id=f"data-version:{part}",
            family="data-version",
            target=part,
            state="failing",
            observed=problem,
            next_step="An in-place restore of this snapshot is refused (unless --force): "
            "upgrade the service to the version that wrote the data first.",
        )
        for part, problem in older_images(manifest, None, config, running).items()
    ]
