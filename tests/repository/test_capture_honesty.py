"""A backup says what it could not capture: directories that vanish or are renamed mid-walk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sbx.repository import Repository
from sbx.repository import parts as parts_module
from sbx.repository.walk import Node, walk_tree


def _tree(root: Path) -> Path:
    (root / "data/uploads/a").mkdir(parents=True)
    (root / "data/uploads/a/1.txt").write_text("one")
    (root / "data/uploads/b").mkdir()
    (root / "data/uploads/b/2.txt").write_text("two")
    return root


def _renaming_walk(victim: str) -> Any:
    """walk_tree, but ``victim`` is renamed right after the walk has seen it."""

    def walk(root: Path, rel_prefix: str, *args: Any) -> Iterator[Node]:
        for node in walk_tree(root, rel_prefix, *args):
            yield node
            if node.path == victim:
                path = Path(node.abs_path)
                path.rename(path.with_name(path.name + ".renamed"))

    return walk


def test_directory_renamed_mid_walk_marks_the_part_incomplete(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "src")
    monkeypatch.setattr(parts_module, "walk_tree", _renaming_walk("data/uploads/a"))
    with repo.writer() as writer:
        writer.begin_snapshot(stack_dir=src)
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
        manifest = writer.commit()
    record = manifest.parts[0]
    assert record.incomplete == ["data/uploads/a"]
    assert any(
        "data/uploads/a vanished or was renamed" in w and "incomplete" in w for w in record.warnings
    ), record.warnings
    # the part record survives the round trip through the stored manifest
    assert repo.load_snapshot(manifest.id).parts[0].incomplete == ["data/uploads/a"]


def test_walk_reports_a_vanished_directory(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    gone: list[str] = []
    walk = walk_tree(src / "data", "data", parts_module.PathFilter(), print, gone.append)
    for node in walk:
        if node.path == "data/uploads/b":
            (src / "data/uploads/b/2.txt").unlink()
            (src / "data/uploads/b").rmdir()
    assert gone == ["data/uploads/b"]


def test_repository_inside_the_stack_is_left_out_with_a_note(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    from sbx.repository.storage.local import LocalStorage

    repo = Repository.open_or_init(LocalStorage(src / "data/backups/repo"))
    with repo.writer() as writer:
        writer.begin_snapshot(stack_dir=src)
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
        with writer.part("inside", "copy") as part:  # a part that is the repository itself
            part.add_tree(src / "data/backups/repo/objects", "repo-objects")
        manifest = writer.commit()
    data, inside = manifest.parts
    paths = {e.path for e in data.entries}
    assert "data/uploads/a/1.txt" in paths and "data/backups" in paths
    assert not [p for p in paths if p.startswith("data/backups/repo")]
    assert any("data/backups/repo: the repository is inside" in w for w in data.warnings)
    assert inside.entries == [] and inside.warnings


def test_directory_renamed_while_listed_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renamed between its listing and the lstat of its entries: every entry is gone."""
    from sbx.repository import walk as walk_module

    src = _tree(tmp_path / "src")
    listing = walk_module._listing

    def listing_then_rename(node: Node, vanished: Any) -> Any:
        children = listing(node, vanished)
        if node.path == "data/uploads/a":
            path = Path(node.abs_path)
            path.rename(path.with_name("a.renamed"))
        return children

    monkeypatch.setattr(walk_module, "_listing", listing_then_rename)
    gone: list[str] = []
    paths = [
        n.path
        for n in walk_tree(src / "data", "data", walk_module.PathFilter(), print, gone.append)
    ]
    assert gone == ["data/uploads/a"]
    assert "data/uploads/a/1.txt" not in paths


def test_a_complete_part_writes_no_incomplete_field(repo: Repository, tmp_path: Path) -> None:
    """Left out when empty: sbx versions before the field still read the manifest."""
    from sbx.repository.format import snapshot_key

    src = _tree(tmp_path / "src")
    with repo.writer() as writer:
        writer.begin_snapshot(stack_dir=src)
        with writer.part("data", "copy") as part:
            part.add_tree(src / "data", "data")
        manifest = writer.commit()
    assert b'"incomplete"' not in repo.storage.get(snapshot_key(manifest.id))
