"""Shared helpers for the repository tests: a source tree with every kind of entry, a full
description of a tree for comparisons, a standard backup, and hand-made manifests."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path
from typing import Any

from blake3 import blake3

from sbx.repository import Repository, SnapshotManifest
from sbx.repository.format import snapshot_key

KiB = 1024
CHUNK = 64 * KiB
SMALL = 16 * KiB
PACK = 64 * KiB
IS_ROOT = os.geteuid() == 0
# parts of the standard backup: name -> paths below the stack
PARTS = {"configs": ["docker-compose.yml", "env"], "data": ["data"], "notes": ["notes"]}


def make_tree(root: Path, seed: int = 1) -> Path:
    """A stack-like tree with every kind of entry the format knows, odd modes and mtimes."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "docker-compose.yml").write_text("services:\n  worker: {}\n")
    env = root / "env"
    env.mkdir(mode=0o750)
    (env / "worker.env").write_text("MODEL=tiny\n")
    (env / "worker.env").chmod(0o600)
    data = root / "data"
    models = data / "models" / "m1"
    models.mkdir(parents=True)
    (models / "big.bin").write_bytes(rng.randbytes(3 * CHUNK + 123))
    (models / "config.json").write_text(json.dumps({"layers": 2}))
    (data / "compressible.txt").write_text("the same line again\n" * 5000)  # > SMALL, chunked
    (data / "empty-dir").mkdir(mode=0o700)
    (data / "zero.bin").write_bytes(b"")
    (data / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (data / "tool.sh").chmod(0o755)
    (data / "setuid-bin").write_bytes(b"\x7fELF fake")
    (data / "setuid-bin").chmod(0o4755 if IS_ROOT else 0o755)
    (data / "sticky").mkdir()
    (data / "sticky").chmod(0o1777)
    (data / "link-rel").symlink_to("../docker-compose.yml")
    (data / "dangling").symlink_to("missing-file")
    (data / "hard-a").write_bytes(b"linked content")
    os.link(data / "hard-a", data / "hard-b")
    small = data / "small"
    small.mkdir()
    for index in range(40):  # ~200 KiB of small files: several packs
        (small / f"f{index:03}").write_bytes(rng.randbytes(rng.randrange(1, SMALL)))
    (small / "dup-1").write_bytes(b"same small content")
    (small / "dup-2").write_bytes(b"same small content")
    readonly = data / "readonly"
    readonly.mkdir()
    (readonly / "inside").write_text("kept")
    notes = root / "notes"
    notes.mkdir()
    (notes / os.fsdecode(b"caf\xe9-latin1.txt")).write_text("not utf-8 name")
    (notes / "naïve.md").write_text("utf-8 name")
    readonly.chmod(0o555)
    if IS_ROOT:  # owners are restored only by root
        os.chown(env / "worker.env", 1234, 5678)
        os.chown(data / "sticky", 4321, 8765)
        os.chown(data / "link-rel", 1111, 2222, follow_symlinks=False)
    _odd_mtimes(root, rng)
    return root


def _odd_mtimes(root: Path, rng: random.Random) -> None:
    paths = sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for path in [*paths, root]:
        ns = 1_600_000_000_000_000_000 + rng.randrange(10**15) * 1000 + rng.randrange(1000)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)


def describe(root: Path, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """Everything a byte-identical restore must reproduce, by path below ``root``."""
    seen: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for name in names:
        top = root / name
        todo = [top] if top.exists() or top.is_symlink() else []
        while todo:
            path = todo.pop()
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            mode = stat.S_IMODE(st.st_mode)
            owner = (st.st_uid, st.st_gid) if IS_ROOT else None
            if stat.S_ISDIR(st.st_mode):
                seen[rel] = ("dir", mode, st.st_mtime_ns, owner)
                todo.extend(path.iterdir())
            elif stat.S_ISLNK(st.st_mode):
                seen[rel] = ("symlink", os.readlink(path), st.st_mtime_ns, owner)
            else:
                digest = blake3(path.read_bytes()).hexdigest()
                seen[rel] = ("file", mode, st.st_size, digest, st.st_mtime_ns, owner)
                inodes.setdefault(st.st_ino, []).append(rel)
    links = sorted(sorted(group) for group in inodes.values() if len(group) > 1)
    seen["<hard links>"] = tuple(tuple(group) for group in links)
    return seen


def backup(
    repo: Repository,
    src: Path,
    previous: SnapshotManifest | None = None,
    parts: dict[str, list[str]] | None = None,
    **tags: str,
) -> SnapshotManifest:
    with repo.writer(command="pytest backup") as writer:
        writer.begin_snapshot(previous=previous, tags=tags, stack_dir=src)
        for name, paths in (parts or PARTS).items():
            with writer.part(name, "copy") as part:
                for rel in paths:
                    part.add_tree(src / rel, rel)
        return writer.commit(box={"compose_sha256": "0" * 64})


def put_manifest(repo: Repository, manifest: dict[str, Any]) -> str:
    """Store a hand-made manifest as is (bypassing every check of the writer)."""
    raw = json.dumps(manifest).encode()
    repo.storage.put(snapshot_key(manifest["id"]), raw)
    return str(manifest["id"])


def manifest_dict(snapshot_id: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "id": snapshot_id,
        "created_at": "2026-01-02T03:04:05Z",
        "finished_at": "2026-01-02T03:04:06Z",
        "host": "box",
        "sbx_version": "0.1.0",
        "parts": [{"name": "configs", "method": "copy", "entries": entries}],
    }
    base.update(extra)
    return base


def object_files(repo_dir: Path) -> list[Path]:
    return sorted(path for path in (repo_dir / "objects").rglob("*") if path.is_file())
