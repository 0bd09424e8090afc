"""Metadata as ``rsync -aHAXS`` keeps it: xattrs, ACLs, directory owners and modes, holes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from repository.helpers import CHUNK, IS_ROOT, backup, manifest_dict
from sbx.errors import ManifestInvalid
from sbx.repository import Repository
from sbx.repository.format import Entry
from sbx.repository.manifest_json import dump_manifest, parse_manifest

KiB = 1024
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (trusted.*, owners, mounts)")
needs_acl_tools = pytest.mark.skipif(
    shutil.which("setfacl") is None, reason="needs setfacl/getfacl (Debian package acl)"
)


def xattrs_of(path: Path) -> dict[str, bytes]:
    names = os.listxattr(path, follow_symlinks=False)
    return {name: os.getxattr(path, name, follow_symlinks=False) for name in sorted(names)}


def write_sparse(path: Path, size: int, data: dict[int, bytes]) -> None:
    """A file of ``size`` bytes with ``data`` at the given offsets and holes everywhere else."""
    with path.open("wb") as handle:
        for offset, block in data.items():
            handle.seek(offset)
            handle.write(block)
        handle.truncate(size)


SNAP = "20260102T030405Z-00000abc"
FILE = {"path": "f", "type": "file", "mode": 420, "size": 10, "hash": "0" * 64,
        "extents": [["1" * 64, 0, 10]]}  # fmt: skip


def test_old_manifests_load_and_new_fields_round_trip() -> None:
    old = parse_manifest(json.dumps(manifest_dict(SNAP, [FILE])).encode(), "old")
    assert old.parts[0].entries[0].xattrs is None and old.parts[0].entries[0].holes is None
    # unchanged text for entries and parts without them
    assert b"xattrs" not in dump_manifest(old) and b"parents" not in dump_manifest(old)
    new = {**FILE, "xattrs": {"user.a": "AP8=", "system.posix_acl_access": ""}, "holes": [[2, 4]]}
    loaded = parse_manifest(json.dumps(manifest_dict(SNAP, [new])).encode(), "new")
    assert parse_manifest(dump_manifest(loaded), "again") == loaded
    assert loaded.parts[0].entries[0].holes == [(2, 4)]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"xattrs": {"user.a": "not base64!"}}, "is not base64"),
        ({"xattrs": {"noprefix": ""}}, "is not a valid name"),
        ({"xattrs": {"user.big": "A" * (90 * 1024)}}, "is over 65536 bytes"),
        ({"xattrs": {f"user.{n}": "" for n in range(1025)}}, "more than 1024"),
        ({"holes": [[4, 2], [0, 2]]}, "sorted, apart"),
        ({"holes": [[8, 4]]}, "inside the file"),
        ({"holes": [[0, 0]]}, "sorted, apart"),
    ],
)
def test_bad_metadata_is_refused_on_load(extra: dict[str, Any], problem: str) -> None:
    raw = json.dumps(manifest_dict(SNAP, [{**FILE, **extra}])).encode()
    with pytest.raises(ManifestInvalid, match=problem):
        parse_manifest(raw, "bad")


def test_xattrs_of_files_dirs_and_links_round_trip(repo: Repository, tmp_path: Path) -> None:
    data = tmp_path / "src/data"
    (data / "dir").mkdir(parents=True)
    (data / "file").write_bytes(b"content")
    (data / "link").symlink_to("file")
    os.setxattr(data / "file", "user.binary", b"\x00\xff\n value")
    os.setxattr(data / "file", "user.empty", b"")
    os.setxattr(data / "dir", "user.tag", b"d")
    if IS_ROOT:  # trusted.* is root's; user.* is not allowed on links
        os.setxattr(data / "file", "trusted.t", b"t")
        os.setxattr(data / "link", "trusted.l", b"l", follow_symlinks=False)
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    report = repo.restore(manifest.id, tmp_path / "out")
    for name in ("dir", "file", "link"):
        assert xattrs_of(tmp_path / "out/data" / name) == xattrs_of(data / name), name
    assert report.warnings == []
    entries = {entry.path: entry for entry in manifest.parts[0].entries}
    assert entries["data/file"].xattrs is not None
    assert entries["data/file"].xattrs["user.binary"] == "AP8KIHZhbHVl"  # base64 in the manifest


@needs_acl_tools
def test_posix_acls_round_trip(repo: Repository, tmp_path: Path) -> None:
    data = tmp_path / "src/data"
    (data / "shared").mkdir(parents=True)
    (data / "shared/report").write_text("r")
    subprocess.run(["setfacl", "-m", "u:1234:rw,g:4321:r", str(data / "shared/report")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "g:4321:rx", str(data / "shared")], check=True)
    (data / "shared/report").chmod(0o640)  # the ACL mask follows the group bits
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    repo.restore(manifest.id, tmp_path / "out")

    def acl(path: Path) -> str:
        args = ["getfacl", "--omit-header", "--numeric", str(path)]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    for rel in ("shared", "shared/report"):
        assert acl(tmp_path / "out/data" / rel) == acl(data / rel), rel
    assert "user:1234:rw-" in acl(tmp_path / "out/data/shared/report")
    assert "default:group:4321:r-x" in acl(tmp_path / "out/data/shared")
    assert stat.S_IMODE((tmp_path / "out/data/shared/report").stat().st_mode) == 0o640


@needs_root
@pytest.mark.skipif(shutil.which("setcap") is None, reason="needs setcap (libcap2-bin)")
def test_capabilities_survive_the_owner_being_set(repo: Repository, tmp_path: Path) -> None:
    # chown clears security.capability: restore must set attributes after the owner
    data = tmp_path / "src/data"
    data.mkdir(parents=True)
    (data / "tool").write_bytes(b"\x7fELF")
    os.chown(data / "tool", 1000, 1000)
    subprocess.run(["setcap", "cap_net_raw+ep", str(data / "tool")], check=True)
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    repo.restore(manifest.id, tmp_path / "out")
    assert xattrs_of(tmp_path / "out/data/tool") == xattrs_of(data / "tool")
    assert "security.capability" in xattrs_of(tmp_path / "out/data/tool")


@pytest.mark.parametrize("only", [None, ["models"]])
def test_directories_above_the_parts_keep_owner_mode_xattrs_mtime(
    repo: Repository, tmp_path: Path, only: list[str] | None
) -> None:
    # parts data/models and data/qdrant: 'data' is in neither, and came back root, 0755, now
    src = tmp_path / "src"
    for name in ("models", "qdrant"):
        (src / "data" / name).mkdir(parents=True)
        (src / "data" / name / "f").write_text(name)
    os.setxattr(src / "data", "user.kept", b"yes")
    (src / "data").chmod(0o2751)
    if IS_ROOT:
        os.chown(src / "data", 1234, 5678)
    os.utime(src / "data", ns=(1_600_000_000_000_000_001,) * 2)
    parts = {"models": ["data/models"], "qdrant": ["data/qdrant"]}
    manifest = backup(repo, src, parts=parts)
    repo.restore(manifest.id, tmp_path / "out", only)
    want, got = (src / "data").stat(), (tmp_path / "out/data").stat()
    assert (got.st_mode, got.st_uid, got.st_gid) == (want.st_mode, want.st_uid, want.st_gid)
    assert got.st_mtime_ns == 1_600_000_000_000_000_001
    assert xattrs_of(tmp_path / "out/data") == {"user.kept": b"yes"}
    assert [p.path for p in manifest.parts[0].parents or ()] == ["data"]


def test_a_parent_outside_the_stack_is_refused_on_load() -> None:
    parent = {"path": "../etc", "type": "dir", "mode": 0o755}
    raw = manifest_dict(SNAP, [FILE])
    raw["parts"][0]["parents"] = [parent]
    with pytest.raises(ManifestInvalid, match="not a directory path below the stack"):
        parse_manifest(json.dumps(raw).encode(), "bad")


@pytest.mark.parametrize("storage", ["repo", "memory_repo"])
def test_holes_inside_a_chunk_stay_holes(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo: Repository = request.getfixturevalue(storage)
    data = tmp_path / "src/data"
    data.mkdir(parents=True)
    sparse = data / "sparse.img"
    # data at both ends of every chunk, a hole of most of each chunk between: no chunk is all
    # zeros, so only a hole map can bring the holes back
    blocks = {n * CHUNK: os.urandom(4 * KiB) for n in range(8)}
    blocks |= {n * CHUNK + CHUNK - 4 * KiB: os.urandom(4 * KiB) for n in range(8)}
    write_sparse(sparse, 8 * CHUNK, blocks)
    if sparse.stat().st_blocks * 512 > 2 * len(blocks) * 4 * KiB:
        pytest.skip("this file system keeps no holes")
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    repo.restore(manifest.id, tmp_path / "out")
    restored = tmp_path / "out/data/sparse.img"
    assert restored.read_bytes() == sparse.read_bytes()
    assert restored.stat().st_blocks <= sparse.stat().st_blocks + 16  # 8 KiB of slack
    entry = next(e for e in manifest.parts[0].entries if e.path == "data/sparse.img")
    assert entry.holes == [(n * CHUNK + 4 * KiB, CHUNK - 8 * KiB) for n in range(8)]


def test_a_hole_map_that_disagrees_with_the_content_changes_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    data = tmp_path / "src/data"
    data.mkdir(parents=True)
    (data / "dense").write_bytes(os.urandom(3 * CHUNK))
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    (entry,) = (e for e in manifest.parts[0].entries if e.type == "file")
    lying = Entry(**{**_fields(entry), "holes": [(4 * KiB, CHUNK)]})
    part = manifest.parts[0].model_copy(update={"entries": [manifest.parts[0].entries[0], lying]})
    repo.restore(manifest.model_copy(update={"parts": [part]}), tmp_path / "out")
    assert (tmp_path / "out/data/dense").read_bytes() == (data / "dense").read_bytes()


def _fields(entry: Entry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in Entry.__dataclass_fields__}


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A mount that holds no extended attributes, ACLs or holes."""
    if not IS_ROOT:
        pytest.skip("needs root to mount")
    mount = tmp_path / "ramfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "sbx-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_root
@needs_acl_tools
def test_a_target_that_cannot_hold_metadata_gets_one_warning_per_kind(
    repo: Repository, tmp_path: Path, ramfs: Path
) -> None:
    data = tmp_path / "src/data"
    data.mkdir(parents=True)
    for index in range(5):
        (data / f"f{index}").write_text("x")
        os.setxattr(data / f"f{index}", "user.tag", b"v")
        os.setxattr(data / f"f{index}", "trusted.tag", b"v")
    subprocess.run(["setfacl", "-m", "u:1234:r", str(data / "f0")], check=True)
    write_sparse(data / "sparse", 4 * CHUNK, {0: b"a", 2 * CHUNK - 1: b"b"})
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    report = repo.restore(manifest.id, ramfs / "out")
    assert (ramfs / "out/data/sparse").read_bytes() == (data / "sparse").read_bytes()
    assert len(report.warnings) == 4, report.warnings
    text = "\n".join(report.warnings)
    assert "user.* extended attributes not kept on 5 entries" in text
    assert "trusted.* extended attributes not kept on 5 entries" in text
    assert "POSIX ACLs not kept on 1 entry" in text
    assert "holes of sparse files not kept on 1 entry" in text
    assert "(first: data/f0)" in text


def test_find_holes_reads_the_file_systems_map(tmp_path: Path) -> None:
    from sbx.repository.metadata import find_holes  # here: the rest runs on the base commit

    dense, sparse = tmp_path / "dense", tmp_path / "sparse"
    dense.write_bytes(bytes(64 * KiB))  # zeros written are data, not holes
    write_sparse(sparse, 256 * KiB, {0: b"a" * 4096, 128 * KiB: b"b" * 4096})
    for path, want in ((dense, None), (sparse, [(4096, 124 * KiB), (132 * KiB, 124 * KiB)])):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.lseek(fd, 10, os.SEEK_SET)
            assert find_holes(fd, path.stat().st_size) == want, path
            assert os.lseek(fd, 0, os.SEEK_CUR) == 10  # the reader's offset is kept
        finally:
            os.close(fd)


@needs_root
def test_xattrs_through_a_directory_handle_do_not_follow_the_link(tmp_path: Path) -> None:
    from sbx.repository.metadata import MetadataNotes, apply_xattrs, at

    (tmp_path / "victim").write_text("v")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/link").symlink_to(tmp_path / "victim")
    entry = Entry(path="dir/link", type="symlink", mode=0o777, link_target="x",
                  xattrs={"trusted.mark": "bGluaw=="})  # fmt: skip
    fd = os.open(tmp_path / "dir", os.O_RDONLY | os.O_DIRECTORY)
    try:
        apply_xattrs(at(fd, "link"), entry, MetadataNotes("t"))
    finally:
        os.close(fd)
    assert xattrs_of(tmp_path / "dir/link") == {"trusted.mark": b"link"}
    assert xattrs_of(tmp_path / "victim") == {}


@needs_root
def test_an_attribute_too_large_for_the_target_is_a_warning(
    repo: Repository, tmp_path: Path
) -> None:
    # tmpfs (like xfs) holds an 8 KiB value; ext4 keeps a file's attributes in one 4 KiB block
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "sbx-test", str(src)], check=True)
    try:
        (src / "data").mkdir()
        (src / "data/f").write_text("x")
        os.setxattr(src / "data/f", "user.big", b"a" * 8000)
        manifest = backup(repo, src, parts={"data": ["data"]})
    finally:
        subprocess.run(["umount", "-l", str(src)], check=False)
    report = repo.restore(manifest.id, tmp_path / "out")
    if not report.warnings:
        pytest.skip("this file system holds large attributes (ext4 with ea_inode, xfs)")
    assert (tmp_path / "out/data/f").read_text() == "x"
    assert "user.* extended attributes not kept on 1 entry" in report.warnings[0]


# -- differential: the same tree through sbx and through rsync -aHAXS --------------------------


def build_tree(root: Path) -> None:
    data = root / "data"
    (data / "odd/inner").mkdir(parents=True)
    (data / "odd/inner/file").write_text("inside")
    (data / "odd").chmod(0o2750)
    (data / "odd/inner").chmod(0o1733)
    (data / "acl").mkdir()
    subprocess.run(["setfacl", "-m", "u:1234:rwx", str(data / "acl")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "g:99:r-x", str(data / "acl")], check=True)
    (data / "acl/file").write_text("acl")
    subprocess.run(["setfacl", "-m", "u:4321:r", str(data / "acl/file")], check=True)
    (data / "x").write_bytes(b"xattrs")
    os.setxattr(data / "x", "user.mime_type", b"text/plain")
    os.setxattr(data / "odd", "user.note", bytes(range(256)))
    write_sparse(data / "sparse", 6 * CHUNK + 100, {10: b"d" * 5000, 3 * CHUNK + 7: b"e"})
    (data / "hard-1").write_bytes(b"linked")
    os.link(data / "hard-1", data / "hard-2")
    (data / "link").symlink_to("odd/inner/file")  # absolute ones: issue 18, part 1
    (data / "empty").mkdir(mode=0o700)
    if IS_ROOT:
        os.chown(data / "odd", 1234, 5678)
        os.chown(data / "odd/inner", 42, 43)
        os.chown(data / "x", 7, 8)
        os.chown(data / "link", 9, 10, follow_symlinks=False)
        os.setxattr(data / "x", "trusted.overlay.opaque", b"y")
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.utime(path, ns=(1_700_000_000_123_456_789,) * 2, follow_symlinks=False)


def compare_view(root: Path) -> dict[str, tuple[Any, ...]]:
    """lstat, xattrs, content and allocation of every path below ``root``, hard links as
    groups: what an ``rsync -aHAXS`` copy keeps."""
    seen: dict[str, tuple[Any, ...]] = {}
    groups: dict[int, list[str]] = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        common = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISLNK(st.st_mode):
            seen[rel] = (*common, os.readlink(path), st.st_mtime_ns, xattrs_of(path))
            continue
        if stat.S_ISREG(st.st_mode):
            groups.setdefault(st.st_ino, []).append(rel)
            content = blake3(path.read_bytes()).hexdigest()
            # allocation in 8 KiB steps: file systems round a little differently
            seen[rel] = (*common, st.st_size, content, st.st_blocks // 16, st.st_mtime_ns)
        else:
            seen[rel] = (*common, st.st_mtime_ns)
        seen[rel] += (xattrs_of(path),)
    seen["<hard links>"] = tuple(sorted(tuple(g) for g in groups.values() if len(g) > 1))
    return seen


@needs_acl_tools
@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_restore_matches_an_rsync_copy(repo: Repository, tmp_path: Path) -> None:
    build_tree(tmp_path / "src")
    reference = tmp_path / "reference"
    reference.mkdir()
    subprocess.run(["rsync", "-aHAXS", f"{tmp_path / 'src/data'}", str(reference)], check=True)
    manifest = backup(repo, tmp_path / "src", parts={"data": ["data"]})
    report = repo.restore(manifest.id, tmp_path / "out")
    view = compare_view(tmp_path / "out/data")
    assert view == compare_view(reference / "data")
    assert {"system.posix_acl_access", "system.posix_acl_default"} <= set(view["acl"][-1])
    assert report.warnings == []
