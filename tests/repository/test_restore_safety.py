"""Hand-made hostile manifests: refused before anything is written, nothing outside the target."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from repository.helpers import manifest_dict, put_manifest
from sbx.errors import (
    ManifestInvalid,
    RestoreRefused,
    SbxError,
    SnapshotNotFound,
    UnsupportedFormat,
)
from sbx.repository import Repository
from sbx.repository.format import Entry, snapshot_key

ENTRY_JSON = TypeAdapter(Entry)  # an entry as its manifest stores it

SID = "20260102T030405Z-0badc0de"


@pytest.fixture
def ok_file(repo: Repository) -> dict[str, Any]:
    """A file entry whose object really exists, to build hostile manifests around."""
    with repo.writer(command="test") as writer:
        writer.begin_snapshot()
        with writer.part("configs", "copy") as part:
            part.add_bytes("ok.txt", b"hello", mode=0o644, mtime_ns=1)
        manifest = writer.commit()
    return ENTRY_JSON.dump_python(manifest.parts[0].entries[0], mode="json", exclude_none=True)


def _file(ok_file: dict[str, Any], path: str) -> dict[str, Any]:
    return {**ok_file, "path": path}


def _dir(path: str) -> dict[str, Any]:
    return {"path": path, "type": "dir", "mode": 0o755}


def _link(path: str, target: str) -> dict[str, Any]:
    return {"path": path, "type": "symlink", "mode": 0o777, "link_target": target}


def _hardlink(path: str, to: str) -> dict[str, Any]:
    return {"path": path, "type": "hardlink", "mode": 0o644, "hardlink_to": to}


HOSTILE: dict[str, tuple[Any, str]] = {
    "traversal": (lambda f: [_file(f, "../x")], "'..' part"),
    "absolute": (lambda f: [_file(f, "/abs")], "absolute"),
    "dot part": (lambda f: [_dir("a"), _file(f, "a/./b")], "part ('.')"),
    "empty part": (lambda f: [_dir("a"), _file(f, "a//b")], "empty"),
    "below a symlink": (lambda f: [_link("a", "d"), _file(f, "a/b")], "parent 'a' is a symlink"),
    "below an absolute link": (
        lambda f: [_link("a", "/tmp/sbx-elsewhere"), _file(f, "a/x")],
        "parent 'a' is a symlink",
    ),
    "below a file": (lambda f: [_file(f, "f"), _file(f, "f/g")], "not a directory"),
    "device": (
        lambda f: [{"path": "dev", "type": "chardev", "mode": 0o600}],
        "entry 'dev' of part 'configs' (type)",
    ),
    "hardlink to missing": (lambda f: [_hardlink("h", "nowhere")], "hard link target"),
    "hardlink to later": (lambda f: [_hardlink("h", "f"), _file(f, "f")], "hard link target"),
    "duplicate": (lambda f: [_file(f, "f"), _file(f, "f")], "appears twice"),
    "bad object id": (
        lambda f: [{**_file(f, "f"), "extents": [["../../etc/passwd", 0, 5]]}],
        "malformed",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_manifest_is_refused_and_nothing_is_written(
    repo: Repository, ok_file: dict[str, Any], tmp_path: Path, case: str
) -> None:
    build, expected = HOSTILE[case]
    put_manifest(repo, manifest_dict(SID, build(ok_file)))
    place = tmp_path / "place"
    sentinel = place / "sentinel"
    sentinel.mkdir(parents=True)
    (sentinel / "keep").write_text("untouched")
    target = place / "target"
    with pytest.raises(ManifestInvalid) as caught:
        repo.restore(SID, target)
    assert expected in str(caught.value)
    assert SID in str(caught.value)
    assert sorted(p.name for p in place.iterdir()) == ["sentinel"]
    assert [p.name for p in sentinel.iterdir()] == ["keep"]
    assert not (tmp_path / "x").exists() and not Path("/abs").exists()


@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"device"}))  # device: refused at load
def test_verify_reports_what_restore_refuses(
    repo: Repository, ok_file: dict[str, Any], case: str
) -> None:
    build, expected = HOSTILE[case]
    put_manifest(repo, manifest_dict(SID, build(ok_file)))
    report = repo.verify(SID)
    assert not report.ok
    refused = [d for d in report.damaged if expected in d.reason]
    assert len(refused) == 1 and refused[0].snapshot_id == SID


# a link's target is data: restored as it was, whatever it points at
LINKS = {"link": "/etc", "a/l": "../../x", "x": ".", "y": "x/..", "gone": "/nonexistent/target"}


def test_links_are_restored_verbatim_whatever_they_point_at(
    repo: Repository, ok_file: dict[str, Any], tmp_path: Path
) -> None:
    entries = [_dir("a"), *(_link(path, to) for path, to in LINKS.items()), _file(ok_file, "f")]
    put_manifest(repo, manifest_dict(SID, entries))
    assert repo.verify(SID).ok
    target = tmp_path / "place" / "target"
    repo.restore(SID, target)
    assert {path: os.readlink(target / path) for path in LINKS} == LINKS
    assert (target / "f").read_bytes() == b"hello"
    assert sorted(p.name for p in (tmp_path / "place").iterdir()) == ["target"]


def test_manifest_of_a_newer_sbx_is_refused(repo: Repository, tmp_path: Path) -> None:
    put_manifest(repo, {**manifest_dict(SID, []), "schema_version": 2})
    with pytest.raises(UnsupportedFormat, match="made by a newer sbx; upgrade sbx"):
        repo.restore(SID, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_truncated_manifest_is_refused(repo: Repository, tmp_path: Path) -> None:
    repo.storage.put(snapshot_key(SID), b'{"schema_version": 1, "id": "2026')
    with pytest.raises(ManifestInvalid, match="truncated or not JSON"):
        repo.restore(SID, tmp_path / "target")
    # and verify reports it as damage instead of crashing
    report = repo.verify()
    assert not report.ok and report.damaged[0].snapshot_id == SID


def test_unknown_snapshot_names_the_command_that_lists_them(repo: Repository) -> None:
    with pytest.raises(SnapshotNotFound, match="'sbx snapshots' lists them") as caught:
        repo.load_snapshot("20990101T000000Z-00000000")
    assert repo.location in str(caught.value)
    with pytest.raises(SnapshotNotFound, match="no snapshots yet"):
        repo.load_snapshot("latest")
    with pytest.raises(SnapshotNotFound):
        repo.load_snapshot("../../etc/passwd")


def test_non_empty_target_is_refused_without_force(
    repo: Repository, ok_file: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "ok.txt").write_text("old")
    (target / "other").write_text("stays")
    with pytest.raises(RestoreRefused, match="is not empty"):
        repo.restore("latest", target)
    assert (target / "ok.txt").read_text() == "old"
    repo.restore("latest", target, force=True)
    assert (target / "ok.txt").read_text() == "hello"
    assert (target / "other").read_text() == "stays"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "target"]


def test_unknown_part_is_refused(repo: Repository, ok_file: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(RestoreRefused, match=r"'models' of snapshot .* is not in it"):
        repo.restore("latest", tmp_path / "target", parts=["models"])
    assert not (tmp_path / "target").exists()


def test_refusals_are_sbx_errors_with_a_next_step(
    repo: Repository, ok_file: dict[str, Any], tmp_path: Path
) -> None:
    put_manifest(repo, manifest_dict(SID, [_file(ok_file, "../x")]))
    with pytest.raises(SbxError) as caught:
        repo.restore(SID, tmp_path / "target")
    assert not caught.value.retryable
    assert "Nothing was written" in str(caught.value)


def test_the_writer_never_follows_a_link_even_if_the_check_missed_it(
    repo: Repository, ok_file: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    entries = [_link("a", str(outside)), _file(ok_file, "a/x"), _link("b", "a"), _dir("b/y")]
    put_manifest(repo, manifest_dict(SID, entries))
    # the manifest check refuses this; the writer must hold on its own
    monkeypatch.setattr("sbx.repository.restore.check_restorable", lambda *args: None)
    with pytest.raises(RestoreRefused, match="is a symlink or not a directory"):
        repo.restore(SID, tmp_path / "target")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "repo"]
