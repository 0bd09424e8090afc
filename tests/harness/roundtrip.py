"""One harness trial: build a tree, back it up, verify, restore, compare with ``rsync -aHAXS``.

The reference is what rsync keeps of the same tree, copied onto the target's filesystem: so
what that filesystem cannot hold (an ACL on a tmpfs without ACLs) is missing from both, and
only what sbx alone loses shows up. A difference is allowed when a warning of the backup names
its path (a fifo skipped, a file changed while read); anything else fails the trial, listing
every difference, the warnings, and the tree drawn.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.compare import Difference, describe, unexplained
from harness.trees import CHUNK, PACK, SMALL, TreeSpec, build
from sbx.errors import SbxError
from sbx.repository import Repository, SnapshotManifest
from sbx.repository.storage.local import LocalStorage

PART = "data"  # the part the tree is backed up as
PREFIX = "data/part"  # its entries are data/part/<path in the tree>, as data/models/...
# what another part left in the target (a --force restore of PART must not touch it): beside
# the part in the same top-level directory, as data/qdrant beside data/models, and at the top
BESIDE = {"data/other/kept.bin": b"another part's file", "kept.txt": b"top-level file"}


@dataclass
class Places:
    """Where one trial works: the tree, the repository, the restore target, the reference."""

    source: Path  # parent of the tree (the tree is source/tree)
    repository: Path
    target: Path  # missing or empty
    reference: Path  # missing; on the target's filesystem


def open_repository(path: Path) -> Repository:
    return Repository.open_or_init(
        LocalStorage(path), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )


def back_up(repo: Repository, root: Path) -> tuple[SnapshotManifest, list[str]]:
    """A snapshot with one part holding ``root``; its manifest and the part's warnings."""
    with repo.writer(command="harness") as writer:
        writer.begin_snapshot(previous=repo.latest_snapshot(), tags={}, stack_dir=root.parent)
        with writer.part(PART, "copy") as part:
            part.add_tree(root, PREFIX)
        manifest = writer.commit(box={"compose_sha256": "0" * 64})
    record = manifest.part(PART)
    assert record is not None
    return manifest, list(record.warnings)


def reference_copy(root: Path, dest: Path) -> None:
    """``rsync -aHAXS`` of ``root``'s contents (through it, when it is a link) into ``dest``."""
    # --modify-window=-1: compare times to the nanosecond; by default rsync takes a directory it
    # has just made within the same second as the source's for up to date, leaving its mtime
    subprocess.run(
        ["rsync", "-aHAXS", "--numeric-ids", "--modify-window=-1", f"{root}/", str(dest)],
        check=True, capture_output=True,
    )  # fmt: skip


def trial(spec: TreeSpec, places: Places) -> None:
    """Backup → verify → restore of ``spec``; raise AssertionError saying what differs."""
    tree = places.source / "tree"
    build(spec, tree)
    root = tree
    if spec.root_link:  # the part's path is a link to the tree, as data/models -> /disk/models
        root = places.source / "tree-link"
        root.symlink_to(tree)
    reference_copy(root, places.reference)
    repo = open_repository(places.repository)
    manifest, warnings = back_up(repo, root)
    report = repo.verify(manifest.id)
    assert report.ok, f"verify found damage in a fresh snapshot: {report.damaged}"
    if spec.force_beside:
        for rel, data in BESIDE.items():
            (places.target / rel).parent.mkdir(parents=True, exist_ok=True)
            (places.target / rel).write_bytes(data)
    try:
        repo.restore(manifest.id, places.target, force=spec.force_beside)
    except SbxError as exc:  # verify must refuse whatever restore refuses
        raise AssertionError(f"verify passed, restore failed: {exc}") from exc
    if spec.force_beside:
        for rel, data in BESIDE.items():
            here = places.target / rel
            assert here.is_file() and here.read_bytes() == data, (
                f"restore --force of part {PART!r} removed or changed {rel}, which it does not hold"
            )
    found = unexplained(
        describe(places.reference), describe(places.target / PREFIX), warnings, PREFIX
    )
    assert not found, failure(found, warnings)


def failure(found: list[Difference], warnings: list[str]) -> str:
    lines = [f"{len(found)} difference(s) from the rsync -aHAXS reference, no warning names:"]
    lines += [f"  {one}" for one in found[:20]]
    lines.append(f"warnings of the backup ({len(warnings)}):")
    lines += [f"  {one!r}" for one in warnings[:20]]
    return "\n".join(lines)


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "256m") -> Iterator[Path]:
    """A fresh tmpfs mounted at ``where`` (made here) for the block; unmounted after."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def can_mount_tmpfs(scratch: Path) -> str | None:
    """None when a tmpfs can be mounted here, else why not."""
    try:
        with tmpfs(scratch / "probe", size="1m"):
            return None
    except (subprocess.CalledProcessError, OSError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        return f"mount -t tmpfs failed ({stderr.decode(errors='replace').strip() or exc})"
