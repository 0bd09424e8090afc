"""Which volumes and mounts are an upgraded service's data, and a rollback that puts back only
those (tasks/upgrade/data_units.py, tasks/upgrade/data.py narrow_manifest), without Docker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from blocks.config import SbxConfig
from sbx.repository.format import Entry, PartRecord, SnapshotManifest
from tasks.backup.sources import Source
from tasks.upgrade.data import narrow_manifest, unit_services
from tasks.upgrade.data_units import data_units, entry_units, tree_prints, unit_parts
from tasks.upgrade.journal import DataUnit, JournalEntry, Release

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _volume(name: str, services: list[str], writers: list[str]) -> Source:
    return Source(
        kind="volume",
        origin=f"service {services[0]}: /data",
        location=name,
        stored_as=f"volumes/{name}",
        part="volumes",
        services=services,
        writers=writers,
        image="img",
    )


def _bind(path: str, services: list[str], writers: list[str], part: str = "outside") -> Source:
    stored = f"outside{path}" if part == "outside" else path.lstrip("/")
    return Source(
        kind="bind",
        origin=f"service {services[0]}: /x" if services else "env_file",
        location=path,
        stored_as=stored,
        part=part,
        services=services,
        writers=writers,
    )


SOURCES = [
    _volume("box_open-webui", ["open-webui"], ["open-webui"]),
    _volume("box_shared", ["open-webui", "notes"], ["notes"]),  # open-webui only reads it
    _volume("box_notes", ["notes"], ["notes"]),
    _bind("/srv/webui-uploads", ["open-webui"], ["open-webui"]),
    _bind("/root/.cache/huggingface", ["worker"], ["worker"]),  # a vLLM's download cache
    _bind("/etc/webui.env", [], []),  # an env_file: nobody's data
]


def test_the_volumes_and_mounts_a_service_writes_are_its_data(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path)
    units = data_units(config, ["open-webui"], SOURCES)
    assert list(units) == ["open-webui", "volumes:box_open-webui", "outside:/srv/webui-uploads"]
    assert units["volumes:box_open-webui"].kind == "volume"
    assert units["outside:/srv/webui-uploads"].stored_as == "outside/srv/webui-uploads"
    assert unit_parts(units) == ["open-webui", "volumes", "outside"]
    # a model server's read-write mounts are models and caches, never snapshotted
    assert data_units(config, ["worker"], SOURCES) == {}
    assert list(data_units(config, ["notes"], SOURCES)) == [
        "volumes:box_shared",
        "volumes:box_notes",
    ]
    # a disabled part is not snapshotted through the back door
    off = SbxConfig(stack_dir=tmp_path, parts={"volumes": {"enabled": False}})
    assert list(data_units(off, ["open-webui"], SOURCES)) == [
        "open-webui",
        "outside:/srv/webui-uploads",
    ]


def test_an_entry_without_units_has_its_parts(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path)
    before = Release(project="p", compose_files={}, images={}, env_fingerprints={}, models={})
    old = JournalEntry(action="upgrade", services=["open-webui"], before=before,
                       data_parts=["open-webui"])  # fmt: skip
    expected = DataUnit(part="open-webui", services=["open-webui"])
    assert entry_units(config, old) == {"open-webui": expected}


def _entry(path: str, kind: str = "file") -> Entry:
    if kind == "dir":
        return Entry(path=path, type="dir", mode=0o755)
    return Entry(path=path, type="file", mode=0o644, hash="0" * 64)


VOLUMES = ("box_open-webui", "box_notes")


def _captured(volume: str) -> dict[str, object]:
    stored = f"volumes/{volume}"
    return {"from": volume, "stored_as": stored, "status": "captured", "kind": "volume"}


def test_a_rollback_puts_back_only_the_changed_units() -> None:
    volumes = PartRecord(
        name="volumes",
        method="docker-volume",
        detail={"mode": "docker-volume", "sources": [_captured(v) for v in VOLUMES]},
        entries=[
            _entry("volumes", "dir"),
            _entry("volumes/box_notes", "dir"),
            _entry("volumes/box_notes/log"),
            _entry("volumes/box_open-webui", "dir"),
            _entry("volumes/box_open-webui/webui.db"),
            _entry("volumes/box_open-webui2", "dir"),  # a name that only starts alike
        ],
    )
    manifest = SnapshotManifest(
        id="20261207T120000Z-00000abc", created_at=NOW, finished_at=NOW, host="box",
        sbx_version="0", parts=[PartRecord(name="open-webui", method="sqlite-online"), volumes,
                                PartRecord(name="notes", method="copy")],
    )  # fmt: skip
    unit = DataUnit(part="volumes", kind="volume", location="box_open-webui",
                    stored_as="volumes/box_open-webui", services=["open-webui"])  # fmt: skip
    narrowed = narrow_manifest(manifest, {"volumes:box_open-webui": unit})
    assert [p.name for p in narrowed.parts] == ["volumes"]
    [part] = narrowed.parts
    assert [s["from"] for s in part.detail["sources"]] == ["box_open-webui"]
    assert [e.path for e in part.entries] == [
        "volumes",
        "volumes/box_open-webui",
        "volumes/box_open-webui/webui.db",
    ]
    assert manifest.parts[1].entries[2].path == "volumes/box_notes/log"  # the original is whole
    assert unit_services({"volumes:box_open-webui": unit}, ["volumes"]) == ["open-webui"]
    assert unit_services({"volumes:box_open-webui": unit}, ["open-webui"]) == []


def test_a_mount_is_printed_under_its_snapshot_path(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.txt").write_text("a")
    (tmp_path / "d" / "link").symlink_to("sub")
    prints = tree_prints(tmp_path / "d", "outside/srv/d")
    assert list(prints) == ["outside/srv/d/sub/a.txt"]
    single = tree_prints(tmp_path / "d" / "sub" / "a.txt", "outside/srv/a.txt")
    assert list(single) == ["outside/srv/a.txt"]
    assert tree_prints(tmp_path / "gone", "outside/gone") == {}
