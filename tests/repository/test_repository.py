"""Opening and creating repositories, and what a location that is none gets told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repository.helpers import backup
from sbx.errors import ConfigError, NotARepository, UnsupportedFormat
from sbx.repository import Repository
from sbx.repository.format import REPOSITORY_FILE, snapshot_key
from sbx.repository.storage.memory import MemoryStorage


def test_open_of_a_non_repository_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NotARepository) as caught:
        Repository.open(tmp_path / "nothing-here")
    assert str(caught.value) == (
        f"{tmp_path}/nothing-here is not an sbx repository (no sbx-repository.json). Point "
        f"--repo at a repository, or run 'sbx backup --repo {tmp_path}/nothing-here' on an "
        "empty or new directory to create one."
    )
    assert caught.value.exit_code == 2


def test_open_or_init_creates_only_in_missing_or_empty_dirs(tmp_path: Path) -> None:
    created = Repository.open_or_init(tmp_path / "a" / "new")
    assert (tmp_path / "a/new" / REPOSITORY_FILE).is_file()
    info = json.loads((tmp_path / "a/new" / REPOSITORY_FILE).read_text())
    assert info["format"] == "sbx-repository" and info["version"] == 1
    assert info["hash"] == "blake3" and info["chunk_size"] == 8 << 20
    assert info["small_file_limit"] == 1 << 20
    again = Repository.open_or_init(tmp_path / "a" / "new")
    assert again.info == created.info
    (tmp_path / "empty").mkdir()
    Repository.open_or_init(tmp_path / "empty")
    (tmp_path / "interrupted" / "tmp").mkdir(parents=True)  # init killed before its first put
    Repository.open_or_init(tmp_path / "interrupted")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(NotARepository, match="is not empty"):
        Repository.open_or_init(busy)
    assert sorted(p.name for p in busy.iterdir()) == ["photo.jpg"]
    with pytest.raises(NotARepository):
        Repository.open(busy)


def test_repository_of_a_newer_sbx_is_refused(tmp_path: Path) -> None:
    repo = Repository.open_or_init(tmp_path / "repo")
    path = tmp_path / "repo" / REPOSITORY_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 2}))
    with pytest.raises(UnsupportedFormat, match="made by a newer sbx; upgrade sbx"):
        Repository.open(repo.location)


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="small_file_limit"):
        Repository.open_or_init(tmp_path / "r", chunk_size=4096, small_file_limit=8192)
    with pytest.raises(ConfigError, match="bucket name"):
        Repository.open("s3://Not_A_Bucket/prefix")


def test_snapshot_list_ignores_everything_but_complete_manifests(
    repo: Repository, src: Path, repo_dir: Path
) -> None:
    manifest = backup(repo, src)
    repo.storage.put("snapshots/notes.txt", b"x")
    repo.storage.put("snapshots/not-an-id.json", b"{}")
    (repo_dir / "tmp" / "123-partial-manifest").write_bytes(b"{")
    assert repo.list_snapshots() == [manifest.id]
    assert repo.latest_snapshot() == manifest


def test_manifest_round_trip_keeps_odd_names(src: Path) -> None:
    storage = MemoryStorage()
    repo = Repository.open_or_init(storage)
    manifest = backup(repo, src)
    raw = storage.get(snapshot_key(manifest.id))
    assert raw.isascii()  # non-UTF-8 names are stored as escapes
    loaded = repo.load_snapshot(manifest.id)
    names = {e.path for p in loaded.parts for e in p.entries}
    assert "notes/caf\udce9-latin1.txt" in names and "notes/naïve.md" in names
    assert loaded == manifest
