"""Manifests written and read one entry at a time give the same text and models as the
whole-model path, whatever the JSON's layout, and refuse what it refused."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from repository.helpers import backup, make_tree, manifest_dict
from sbx.errors import ManifestInvalid, UnsupportedFormat
from sbx.repository import Repository, SnapshotManifest
from sbx.repository.format import dump_model, snapshot_key
from sbx.repository.manifest_json import dump_manifest, parse_manifest

SID = "20260102T030405Z-0badc0de"


@pytest.fixture
def manifest(repo: Repository, tmp_path: Path) -> SnapshotManifest:
    """A real backup with every kind of entry, a non-UTF-8 name and a skipped part."""
    src = make_tree(tmp_path / "src")  # notes/ holds a latin-1 name: a lone surrogate in JSON
    made = backup(repo, src, parts={"configs": ["docker-compose.yml", "env"], "data": ["data"]})
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot(previous=made, stack_dir=src)
        for name, paths in {"data": ["data"], "notes": ["notes"]}.items():
            with writer.part(name, "copy") as part:
                for rel in paths:
                    part.add_tree(src / rel, rel)
        with writer.part("qdrant", "api") as part:
            part.skip("qdrant is not running")
        return writer.commit(box={"compose_sha256": "0" * 64, "odd": "caf\udce9"})


def test_dump_is_byte_identical_to_the_whole_model_dump(manifest: SnapshotManifest) -> None:
    assert len({entry.type for part in manifest.parts for entry in part.entries}) == 4
    assert b"\\udce9" in dump_model(manifest)
    assert dump_manifest(manifest) == dump_model(manifest)


def test_parse_gives_back_the_same_manifest(manifest: SnapshotManifest) -> None:
    raw = dump_manifest(manifest)
    assert parse_manifest(raw, "test") == manifest
    parsed = parse_manifest(raw, "test").part("notes")
    assert parsed is not None and parsed.entries[0].path == "notes"


def test_parse_reads_any_layout_and_key_order(manifest: SnapshotManifest) -> None:
    data: dict[str, Any] = json.loads(dump_manifest(manifest))
    shuffled = {key: data[key] for key in reversed(list(data))}
    shuffled["parts"] = [{key: part[key] for key in reversed(list(part))} for part in data["parts"]]
    for text in (json.dumps(shuffled, indent=2), json.dumps(data, indent="\t") + "\n\n"):
        assert parse_manifest(text.encode(), "test") == manifest


class _Trickle(io.RawIOBase):
    """A stream that gives at most ``step`` bytes a read: every value, number and UTF-8
    sequence ends up cut by a block's end somewhere."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        piece = self.data[self.at : self.at + min(self.step, size if size >= 0 else self.step)]
        self.at += len(piece)
        return piece


@pytest.mark.parametrize("step", [1, 3, 64])
def test_a_stream_read_in_small_pieces_gives_the_same_manifest(
    manifest: SnapshotManifest, step: int
) -> None:
    data: dict[str, Any] = json.loads(dump_manifest(manifest))
    note = "naïve ✓ 日本"
    data["tags"] = {"note": note}
    text = json.dumps(data, indent=1)  # then the note as raw UTF-8, not escapes: cut somewhere
    raw = text.replace(json.dumps(note)[1:-1], note).encode()
    assert note.encode() in raw
    parsed = parse_manifest(_Trickle(raw, step), "test")  # type: ignore[arg-type]
    assert parsed == manifest.model_copy(update={"tags": data["tags"]})


def _refused(data: Any) -> str:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(json.dumps(data).encode(), f"snapshot {SID}")
    return str(caught.value)


def test_a_bad_entry_is_named_with_its_part_even_before_the_name() -> None:
    bad = manifest_dict(SID, [{"path": "a", "type": "dir", "mode": 0o755}, {"path": "x/y"}])
    assert "entry 'x/y' of part 'configs' (type): Field required" in _refused(bad)
    part = bad["parts"][0]
    bad["parts"][0] = {"entries": part["entries"], **part}  # entries before the part's name
    assert "entry 'x/y' of part #1 (type)" in _refused(bad)


def test_a_newer_version_wins_over_entries_it_shapes_anew() -> None:
    newer = manifest_dict(SID, [{"path": "a", "kind": "directory"}], schema_version=2)
    with pytest.raises(UnsupportedFormat, match="version 2"):
        parse_manifest(json.dumps(newer).encode(), "test")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"schema_version": 1, "parts": [', "truncated or not JSON"),
        ('{"schema_version": 1} {}', "truncated or not JSON"),
        ('{"schema_version": 1, 7: 1}', "truncated or not JSON"),
        ('{"schema_version": 1 "id": 1}', "truncated or not JSON"),
        ('"a manifest"', "not a JSON object"),
        ('{"schema_version": 1, "host": 12', "truncated or not JSON"),
    ],
)
def test_broken_text_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ManifestInvalid, match=problem):
        parse_manifest(text.encode(), "test")


def test_entries_that_are_not_a_list_or_parts_not_objects_are_refused() -> None:
    data = manifest_dict(SID, [])
    data["parts"][0]["entries"] = {"path": "a"}
    assert "parts.0.entries" in _refused(data)
    data["parts"] = ["configs"]
    assert "parts.0" in _refused(data)


def test_a_summary_shows_what_the_manifest_says(
    repo: Repository, manifest: SnapshotManifest
) -> None:
    summary = repo.snapshot_summary(manifest.id)
    assert (summary.id, summary.created_at, summary.host) == (
        manifest.id,
        manifest.created_at,
        manifest.host,
    )
    assert (summary.stack_dir, summary.tags, summary.stats) == (
        manifest.stack_dir,
        manifest.tags,
        manifest.stats,
    )
    assert [(p.name, p.status, p.stats) for p in summary.parts] == [
        (p.name, p.status, p.stats) for p in manifest.parts
    ]
    assert "skipped" in {p.status for p in summary.parts}
    assert repo.snapshot_summary("latest").id == manifest.id


def test_a_summary_reads_past_the_entries_and_still_refuses_what_is_not_a_manifest(
    repo: Repository,
) -> None:
    bad_entry = manifest_dict(SID, [{"path": "a", "type": "dir", "mode": 0o755}, {"path": "x/y"}])
    repo.storage.put(snapshot_key(SID), json.dumps(bad_entry).encode())
    with pytest.raises(ManifestInvalid, match="entry 'x/y'"):
        repo.load_snapshot(SID)  # restore and verify load it whole, and refuse it
    listed = repo.snapshot_summary(SID)  # a listing shows it; 'sbx verify' names the damage
    assert [p.name for p in listed.parts] == ["configs"]

    for text, error in [
        (b'{"schema_version": 1, "id": "2026', ManifestInvalid),
        (json.dumps(manifest_dict(SID, [], host=7)).encode(), ManifestInvalid),
        (json.dumps(manifest_dict(SID, [], schema_version=2)).encode(), UnsupportedFormat),
        (json.dumps(manifest_dict(SID[:-1] + "f", [])).encode(), ManifestInvalid),
    ]:
        repo.storage.delete(snapshot_key(SID))
        repo.storage.put(snapshot_key(SID), text)
        with pytest.raises(error):
            repo.snapshot_summary(SID)
