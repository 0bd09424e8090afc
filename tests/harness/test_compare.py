"""The comparer finds what it claims to compare: a harness that cannot see a difference passes
anything. Each test copies a small tree with ``rsync -aHAXS``, spoils one thing in the copy and
expects exactly that difference."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.compare import Difference, describe, differences, explained, unexplained
from harness.roundtrip import reference_copy
from harness.trees import CHUNK


def _tree(root: Path) -> Path:
    root.mkdir()
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"content")
    os.link(root / "d" / "f", root / "hard")
    (root / "link").symlink_to("d/f")
    with (root / "sparse").open("wb") as out:
        out.write(b"x")
        out.seek(16 * CHUNK)
        out.write(b"y")
    os.setxattr(root / "d" / "f", "user.k", b"v")
    return root


def _relink(root: Path) -> None:
    (root / "link").unlink()
    (root / "link").symlink_to("d/g")


def _dense(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)


SPOILERS: dict[str, tuple[Callable[[Path], object], str, bytes]] = {
    "mode": (lambda r: (r / "d").chmod(0o700), "mode", b"d"),
    "content": (lambda r: (r / "d" / "f").write_bytes(b"CONTENT"), "content", b"d/f"),
    "mtime": (lambda r: os.utime(r / "d", ns=(1, 1)), "mtime_ns", b"d"),
    "owner": (lambda r: os.chown(r / "link", 4242, 0, follow_symlinks=False), "uid", b"link"),
    "link": (_relink, "link", b"link"),
    "xattr": (lambda r: os.removexattr(r / "d" / "f", "user.k"), "xattrs", b"d/f"),
    "hard link": (lambda r: _dense(r / "hard"), "hard-link group", b"hard"),
    "holes": (lambda r: _dense(r / "sparse"), "st_blocks (holes)", b"sparse"),
    "missing": (lambda r: (r / "link").unlink(), "presence", b"link"),
}


@pytest.mark.parametrize("name", sorted(SPOILERS))
def test_each_spoiled_field_is_a_difference(name: str, tmp_path: Path, as_root: None) -> None:
    spoil, what, path = SPOILERS[name]
    source = _tree(tmp_path / "source")
    reference_copy(source, tmp_path / "copy")
    assert differences(describe(source), describe(tmp_path / "copy")) == []
    spoil(tmp_path / "copy")
    found = differences(describe(source), describe(tmp_path / "copy"))
    assert what in {one.what for one in found if one.path == path}, found


def test_an_acl_is_compared(tmp_path: Path, as_root: None) -> None:
    source = _tree(tmp_path / "source")
    subprocess.run(["setfacl", "-m", "u:4242:rwx", source / "d"], check=True)
    reference_copy(source, tmp_path / "copy")
    assert differences(describe(source), describe(tmp_path / "copy")) == []
    subprocess.run(["setfacl", "-b", tmp_path / "copy" / "d"], check=True)
    found = differences(describe(source), describe(tmp_path / "copy"))
    assert {(one.path, one.what) for one in found} >= {(b"d", "xattrs")}


def test_a_warning_explains_its_path_and_below_only() -> None:
    below = Difference(b"a/b", "presence", True, False)
    sibling = Difference(b"ab", "presence", True, False)
    warnings = ["data/a skipped: a fifo (not backed up)"]
    assert explained(below, warnings, "data")
    assert not explained(sibling, warnings, "data")
    assert not explained(below, ["data/a/bc changed while being read"], "data")
    root_warning = ["data is a symlink to '/x'; only the link is backed up"]
    assert explained(Difference(b"", "kind", "dir", "symlink"), root_warning, "data")
    assert not explained(below, root_warning, "data")


def test_unexplained_keeps_what_no_warning_names(tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.mkdir()
    (source / "fifo").write_bytes(b"")
    (source / "file").write_bytes(b"1")
    copy = tmp_path / "c"
    copy.mkdir()
    os.utime(source, ns=(5, 5))
    os.utime(copy, ns=(5, 5))
    left = unexplained(describe(source), describe(copy), ["data/fifo skipped: a fifo"], "data")
    assert [(one.path, one.what) for one in left] == [(b"file", "presence")]
