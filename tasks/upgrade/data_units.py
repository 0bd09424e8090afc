"""What counts as a service's data for an upgrade's rollback, and its fingerprint.

A unit of data is either a configured part whose ``service`` is the upgraded one (keyed by the
part's name), or something the compose model names that the service mounts read-write and no
configured part covers: a named volume (``volumes:<name>``, as the stock Open WebUI compose file
has ``open-webui:/app/backend/data``), a bind mount outside the stack (``outside:<path>``) or one
inside it (``mounts:<path>``). The pre-upgrade snapshot holds the units of the services upgraded
and nothing else of those shared parts, so a rollback never puts back another service's volume.

Model servers (``kind = "openai"``: the vLLMs) have no units beyond their configured parts:
what they mount read-write is a model or a download cache (the stock ``~/.cache/huggingface``),
hundreds of GiB no upgrade migrates.

The fingerprint, one sha256 a unit over its files: SQLite databases by the sha256 of an
online-backup copy (the same consistent read the backup makes; the ``-wal``/``-shm`` files are
inside it), every other file by size and mtime. A volume is read through a helper container
(tasks/clients/docker_volumes.py) into scratch space and printed the same way; Docker's archive
keeps whole-second mtimes, so there a same-size rewrite within one second goes unseen.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from blocks.config import ConsistencyMethod, SbxConfig
from blocks.sections import ServiceKind
from tasks.backup.sources import FILLED_PARTS, Source
from tasks.backup.sqlite_copy import SIDECAR_SUFFIXES, copy_database, is_sqlite_database
from tasks.backup.volumes import TOP, scratch_dir, unpack
from tasks.clients.docker_volumes import connect as connect_volumes
from tasks.upgrade.journal import DataUnit, JournalEntry


def data_parts(config: SbxConfig, compose_services: list[str]) -> list[str]:
    """The enabled configured parts whose ``service`` is one of ``compose_services``.

    Immutable parts (models: mounted read-only, never rewritten by the service) are left out:
    no upgrade changes them, and hashing hundreds of GiB would hold up every upgrade."""
    wanted = set(compose_services)
    found = []
    for name, part in config.enabled_parts().items():
        if part.service is None or not part.paths or part.method is ConsistencyMethod.IMMUTABLE:
            continue
        if _compose_name(config, part.service) in wanted or part.service in wanted:
            found.append(name)
    return found


def data_units(
    config: SbxConfig, compose_services: list[str], sources: list[Source]
) -> dict[str, DataUnit]:
    """key -> unit of the data of ``compose_services`` (see the module docstring)."""
    units = {
        name: DataUnit(part=name, services=part_services(config, [name]))
        for name in data_parts(config, compose_services)
    }
    model_servers = {
        svc.compose_service
        for svc in config.enabled_services().values()
        if svc.kind is ServiceKind.OPENAI
    }
    wanted = set(compose_services) - model_servers
    enabled = config.enabled_parts()
    for src in sources:
        if src.part not in FILLED_PARTS or src.part not in enabled or src.note:
            continue
        if not src.stored_as or not wanted & set(src.writers):
            continue
        units[f"{src.part}:{src.location}"] = DataUnit(
            part=src.part,
            kind="volume" if src.kind == "volume" else "path",
            location=src.location,
            stored_as=src.stored_as,
            image=src.image,
            services=sorted(src.services),
        )
    return units


def physical_copies(config: SbxConfig, parts: list[str]) -> dict[str, str]:
    """part -> the capture method of the pre-upgrade snapshot where it is not the configured one.

    A part captured through Qdrant's snapshot API is copied as files with Qdrant stopped: a
    newer Qdrant migrates its storage on start, irreversibly, and the old one refuses storage a
    newer one stamped ("Collection version … is greater than application version …", upstream
    Collection::load; its FAQ: no downgrade). Only the old storage's files let the old image
    start again; a collection snapshot could be recovered only once it runs."""
    return {
        name: ConsistencyMethod.STOP_COPY.value
        for name in parts
        if (part := config.parts.get(name)) and part.method is ConsistencyMethod.QDRANT_SNAPSHOT
    }


def entry_units(config: SbxConfig, entry: JournalEntry) -> dict[str, DataUnit]:
    """The entry's units; an entry written before units were recorded has its parts."""
    if entry.data_units:
        return entry.data_units
    return {p: DataUnit(part=p, services=part_services(config, [p])) for p in entry.data_parts}


def unit_parts(units: dict[str, DataUnit]) -> list[str]:
    """The parts holding ``units``, each once, in order."""
    return list(dict.fromkeys(unit.part for unit in units.values()))


def part_services(config: SbxConfig, parts: list[str]) -> list[str]:
    """The compose services whose data the configured ``parts`` hold."""
    services = set()
    for name in parts:
        part = config.parts.get(name)
        if part is not None and part.service is not None:
            services.add(_compose_name(config, part.service))
    return sorted(services)


def fingerprint_units(config: SbxConfig, units: dict[str, DataUnit]) -> dict[str, str]:
    """key -> one sha256 over the unit's files' fingerprints: small enough for the journal
    entry whatever the number of uploads, and all a rollback needs to decide."""
    return {key: _digest(unit_prints(config, unit)) for key, unit in units.items()}


def fingerprint_data(config: SbxConfig, parts: list[str]) -> dict[str, str]:
    """part -> the fingerprint of a configured part (:func:`fingerprint_units`)."""
    return fingerprint_units(config, {p: DataUnit(part=p) for p in parts})


def data_changed(config: SbxConfig, entry: JournalEntry) -> list[str]:
    """The keys of the entry's units whose fingerprint differs from the one before the switch."""
    units = entry_units(config, entry)
    now = fingerprint_units(config, units)
    return [key for key in units if now[key] != entry.data_fingerprint.get(key)]


def unit_prints(config: SbxConfig, unit: DataUnit) -> dict[str, str]:
    """path -> fingerprint of every file of ``unit`` as it is now."""
    if unit.kind == "part":
        return file_prints(config, unit.part)
    if unit.kind == "path":
        assert unit.location is not None and unit.stored_as is not None  # a mount has both
        return tree_prints(Path(unit.location), unit.stored_as)
    return _volume_prints(config, unit)


def file_prints(config: SbxConfig, part: str) -> dict[str, str]:
    """path -> fingerprint of every file of the configured ``part`` as it is now."""
    prints: dict[str, str] = {}
    for rel in config.parts[part].paths:
        prints.update(tree_prints(config.stack_dir / rel, Path(rel).as_posix()))
    return prints


def tree_prints(root: Path, shown_as: str) -> dict[str, str]:
    """``shown_as``/path -> fingerprint of every file below ``root`` (or of ``root``)."""
    files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
    databases = {f for f in files if is_sqlite_database(f)}
    sidecars = {Path(f"{db}{suffix}") for db in databases for suffix in SIDECAR_SUFFIXES}
    prints: dict[str, str] = {}
    for path in files:
        if path in sidecars or path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        key = shown_as if rel == "." else f"{shown_as}/{rel}"
        prints[key] = _database_print(path) if path in databases else _stat_print(path)
    return prints


def _volume_prints(config: SbxConfig, unit: DataUnit) -> dict[str, str]:
    """The volume's files, read through a helper container of its service's image (as the
    backup reads it) into scratch space on the stack's disk."""
    assert unit.location is not None and unit.image is not None  # a volume unit has both
    with connect_volumes() as docker_volumes:
        if not docker_volumes.exists(unit.location):  # a helper would create it, empty
            return {unit.stored_as or unit.location: "missing"}
        with tempfile.TemporaryDirectory(dir=scratch_dir(config.stack_dir)) as tmp:
            tar = Path(tmp) / "volume.tar"
            docker_volumes.read_to_tar(unit.location, unit.image, tar)
            unpack(tar, Path(tmp) / "tree")
            return tree_prints(Path(tmp) / "tree" / TOP, unit.stored_as or unit.location)


def _digest(prints: dict[str, str]) -> str:
    lines = "".join(f"{path}\t{value}\n" for path, value in sorted(prints.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _stat_print(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _database_print(path: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="sbx-upgrade-") as tmp:
        copy = copy_database(path, Path(tmp) / "copy.db")
        return "sqlite:" + hashlib.sha256(copy.copy_path.read_bytes()).hexdigest()


def _compose_name(config: SbxConfig, service: str) -> str:
    svc = config.services.get(service)
    return svc.compose_service if svc else service
