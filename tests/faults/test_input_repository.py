"""Crafted repositories and manifests through the restore engine: every one refused with a clear
error (it names the snapshot or file and the next step) and nothing written outside the target.

Every hostile path points into a sentinel tree beside the target (see input_helpers), so a write
outside the target changes the sentinel. Hypothesis adds manifests made of hostile path segments
and link targets (derandomized: the same examples every run; no example database).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbx.errors import (
    IntegrityError,
    ManifestInvalid,
    NotARepository,
    RestoreRefused,
    SbxError,
    UnsupportedFormat,
)
from sbx.repository import Repository
from sbx.repository.format import REPOSITORY_FILE, object_key

from .figures import FaultFigures
from .input_helpers import (
    Bed,
    clear_message,
    escapes,
    make_bed,
    manifest,
    new_snapshot_id,
    tree_state,
)

Build = Callable[[Bed], str]


def _file(bed: Bed, path: str) -> dict[str, Any]:
    return {**bed.small, "path": path}


def _dir(path: str) -> dict[str, Any]:
    return {"path": path, "type": "dir", "mode": 0o755}


def _link(path: str, target: str) -> dict[str, Any]:
    return {"path": path, "type": "symlink", "mode": 0o777, "link_target": target}


def _hard(path: str, to: str) -> dict[str, Any]:
    return {"path": path, "type": "hardlink", "mode": 0o644, "hardlink_to": to}


def _special(kind: str) -> Build:
    return lambda b: b.put([{"path": "node", "type": kind, "mode": 0o600}])


def _raw(body: bytes) -> Build:
    def build(bed: Bed) -> str:
        sid = new_snapshot_id()
        bed.put_raw(sid, body.replace(b"SID", sid.encode()))
        return sid

    return build


def _damaged_object(bed: Bed) -> str:
    key = object_key(bed.big["extents"][1][0])
    path = bed.repo_dir / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return bed.put([bed.big])


def _missing_object(bed: Bed) -> str:
    (bed.repo_dir / object_key(bed.big["extents"][2][0])).unlink()
    return bed.put([bed.big])


def _put_link_id(bed: Bed) -> str:
    """A manifest stored under one id that carries another (a file renamed by hand)."""
    sid, other = new_snapshot_id(), new_snapshot_id()
    bed.put_raw(sid, json.dumps(manifest(other, [])).encode())
    return sid


def _out(bed: Bed) -> str:
    return str(bed.sentinel / "pwned")


# case -> (build the snapshot, error class, text the message must hold besides the snapshot id)
CASES: dict[str, tuple[Build, type[SbxError], str]] = {
    "traversal": (lambda b: b.put([_file(b, "../sentinel/pwned")]), ManifestInvalid, "'..'"),
    "traversal deep": (
        lambda b: b.put([_dir("a"), _file(b, "a/../../sentinel/pwned")]),
        ManifestInvalid,
        "'..'",
    ),
    "absolute path": (lambda b: b.put([_file(b, _out(b))]), ManifestInvalid, "absolute"),
    "NUL in path": (lambda b: b.put([_file(b, "a\0b")]), ManifestInvalid, "NUL"),
    # a link's target is data (restored verbatim); writing through one is what is refused
    "file through an absolute link": (
        lambda b: b.put([_link("l", str(b.sentinel)), _file(b, "l/pwned")]),
        ManifestInvalid,
        "parent 'l' is a symlink",
    ),
    "dir through a link up and out": (
        lambda b: b.put([_dir("a"), _link("a/l", "../../sentinel"), _dir("a/l/pwned")]),
        ManifestInvalid,
        "parent 'a/l' is a symlink",
    ),
    "hard link through a link chain": (
        lambda b: b.put([_link("x", "."), _file(b, "f"), _hard("x/pwned", "f")]),
        ManifestInvalid,
        "parent 'x' is a symlink",
    ),
    "symlink NUL target": (lambda b: b.put([_link("l", "a\0b")]), ManifestInvalid, "NUL"),
    "file under symlinked dir": (
        lambda b: b.put([_link("a", "d"), _dir("d"), _file(b, "a/pwned")]),
        ManifestInvalid,
        "parent 'a' is a symlink",
    ),
    "file under a file": (
        lambda b: b.put([_file(b, "f"), _file(b, "f/g")]),
        ManifestInvalid,
        "not a directory",
    ),
    "hard link out of target": (
        lambda b: b.put([_hard("h", "../sentinel/keep")]),
        ManifestInvalid,
        "hard link target",
    ),
    "hard link absolute": (
        lambda b: b.put([_hard("h", str(b.sentinel / "keep"))]),
        ManifestInvalid,
        "hard link target",
    ),
    "hard link to a later file": (
        lambda b: b.put([_hard("h", "f"), _file(b, "f")]),
        ManifestInvalid,
        "hard link target",
    ),
    "char device": (_special("chardev"), ManifestInvalid, "(type)"),
    "block device": (_special("blockdev"), ManifestInvalid, "(type)"),
    "fifo": (_special("fifo"), ManifestInvalid, "(type)"),
    "socket": (_special("socket"), ManifestInvalid, "(type)"),
    "device mode bits": (
        lambda b: b.put([{**_file(b, "f"), "mode": 0o020644}]),
        ManifestInvalid,
        "(mode)",
    ),
    "duplicate path": (
        lambda b: b.put([_file(b, "f"), _file(b, "f")]),
        ManifestInvalid,
        "appears twice",
    ),
    "duplicate path across parts": (
        lambda b: b.put(
            [_file(b, "f")],
            parts=[
                {"name": "configs", "method": "copy", "entries": [_file(b, "f")]},
                {"name": "notes", "method": "copy", "entries": [_file(b, "f")]},
            ],
        ),
        ManifestInvalid,
        "appears twice",
    ),
    "duplicate part": (
        lambda b: b.put(
            [],
            parts=[
                {"name": "configs", "method": "copy", "entries": []},
                {"name": "configs", "method": "copy", "entries": [_file(b, "f")]},
            ],
        ),
        ManifestInvalid,
        "appears twice",
    ),
    "manifest of a newer sbx": (
        lambda b: b.put([], schema_version=2),
        UnsupportedFormat,
        "upgrade sbx",
    ),
    "manifest version 0": (lambda b: b.put([], schema_version=0), ManifestInvalid, "schema"),
    "manifest version as text": (
        lambda b: b.put([], schema_version="1"),
        ManifestInvalid,
        "schema",
    ),
    "truncated manifest": (
        _raw(b'{"schema_version": 1, "id": "SID", "parts": [{"na'),
        ManifestInvalid,
        "truncated",
    ),
    "manifest not JSON": (_raw(b"\x00\xff\xfe garbage"), ManifestInvalid, "not JSON"),
    "manifest a JSON list": (_raw(b"[1, 2, 3]"), ManifestInvalid, "not a JSON object"),
    "manifest of another id": (_put_link_id, ManifestInvalid, "carries the id"),
    "bad object id": (
        lambda b: b.put([{**_file(b, "f"), "extents": [["../../sentinel/keep", 0, 5]]}]),
        ManifestInvalid,
        "malformed",
    ),
    "negative extent": (
        lambda b: b.put([{**_file(b, "f"), "extents": [[b.small["extents"][0][0], -1, 5]]}]),
        ManifestInvalid,
        "extent",
    ),
    "mtime out of range": (
        lambda b: b.put([{**_dir("d"), "mtime_ns": 10**30}]),
        ManifestInvalid,
        "mtime_ns",
    ),
    "uid out of range": (lambda b: b.put([{**_file(b, "f"), "uid": -2}]), ManifestInvalid, "uid"),
    "hash mismatch small file": (
        lambda b: b.put([{**_file(b, "f"), "hash": "0" * 64}]),
        IntegrityError,
        "the manifest says",
    ),
    "hash mismatch chunked file": (
        lambda b: b.put([{**b.big, "hash": "1" * 64}]),
        IntegrityError,
        "extents hash to",
    ),
    "extent past the object": (
        lambda b: b.put(
            [{**_file(b, "f"), "size": 9, "extents": [[b.small["extents"][0][0], 0, 9]]}]
        ),
        IntegrityError,
        "reads up to byte",
    ),
    "damaged object": (_damaged_object, IntegrityError, "damaged"),
    "missing object": (_missing_object, IntegrityError, "big.bin"),
}


@pytest.fixture
def bed(tmp_path: Path) -> Bed:
    return make_bed(tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_snapshot_is_refused_and_nothing_is_written_outside(
    bed: Bed, case: str, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    build, expected, text = CASES[case]
    sid = build(bed)
    before = tree_state(bed.place)
    fault_figures.add(request.node.name, bad_inputs_tried=1)
    with pytest.raises(SbxError) as caught:
        bed.repo.restore(sid, bed.target)
    problem = clear_message(caught.value, [sid, text])
    assert isinstance(caught.value, expected), f"{case}: {type(caught.value).__name__}: {problem}"
    assert problem is None, f"{case}: {problem}"
    assert not caught.value.retryable
    # a newer format is refused before anything is looked at; the others say nothing was written
    assert expected is UnsupportedFormat or "Nothing was" in str(caught.value)
    assert tree_state(bed.place) == before, f"{case}: something was written beside the target"
    assert not bed.target.exists()
    fault_figures.add(request.node.name, bad_inputs_refused=1)


def _repo_file(body: bytes) -> Callable[[Bed], None]:
    def damage(bed: Bed) -> None:
        path = bed.repo_dir / REPOSITORY_FILE
        path.chmod(0o644)
        path.write_bytes(body)

    return damage


def _info(**changes: Any) -> bytes:
    data = {
        "format": "sbx-repository",
        "version": 1,
        "id": "x",
        "created_at": "2026-01-02T03:04:05Z",
    }
    data.update(changes)
    return json.dumps(data).encode()


REPOSITORY_CASES: dict[str, tuple[Callable[[Bed], None], type[SbxError], str]] = {
    "repository of a newer sbx": (_repo_file(_info(version=2)), UnsupportedFormat, "upgrade sbx"),
    "repository version 0": (_repo_file(_info(version=0)), ManifestInvalid, "version"),
    "another tool's repository": (_repo_file(_info(format="restic")), ManifestInvalid, "restic"),
    "truncated repository file": (_repo_file(b'{"format": "sbx-rep'), ManifestInvalid, "truncated"),
    "repository file a list": (_repo_file(b"[]"), ManifestInvalid, "not a JSON object"),
    "bad chunk size": (_repo_file(_info(chunk_size=0)), ManifestInvalid, "chunk_size"),
    "no repository file": (
        lambda b: (b.repo_dir / REPOSITORY_FILE).unlink(),
        NotARepository,
        "sbx-repository.json",
    ),
}


@pytest.mark.parametrize("case", list(REPOSITORY_CASES))
def test_crafted_repository_is_refused_before_anything_is_read(
    bed: Bed, case: str, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    damage, expected, text = REPOSITORY_CASES[case]
    damage(bed)
    fault_figures.add(request.node.name, bad_inputs_tried=1)
    with pytest.raises(SbxError) as caught:
        Repository.open(bed.repo_dir).restore("latest", bed.target)
    assert isinstance(caught.value, expected), f"{case}: {caught.value}"
    problem = clear_message(caught.value, [str(bed.repo_dir), text])
    assert problem is None, f"{case}: {problem}"
    assert not bed.target.exists()
    fault_figures.add(request.node.name, bad_inputs_refused=1)


TARGET_CASES: dict[str, Callable[[Bed], tuple[Path, list[str] | None]]] = {
    "target is a file": lambda b: (b.sentinel / "keep", None),
    "target not empty": lambda b: (b.sentinel, None),
    "unknown part": lambda b: (b.target, ["models"]),
}


@pytest.mark.parametrize("case", list(TARGET_CASES))
def test_unusable_target_or_part_is_refused(
    bed: Bed, case: str, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    target, parts = TARGET_CASES[case](bed)
    before = tree_state(bed.place)
    fault_figures.add(request.node.name, bad_inputs_tried=1)
    with pytest.raises(RestoreRefused) as caught:
        bed.repo.restore("latest", target, parts)
    assert clear_message(caught.value, ["Nothing was written"]) is None, caught.value
    assert tree_state(bed.place) == before
    fault_figures.add(request.node.name, bad_inputs_refused=1)


# -- property: manifests made of hostile segments --------------------------------------------

HARMLESS = ["a", "b", "sentinel", "keep", "é", "c d"]
HOSTILE = ["..", ".", "", "x\0y"]


def _path(draw: st.DrawFn, hostile: bool) -> str:
    segments = st.sampled_from(HARMLESS + HOSTILE if hostile else HARMLESS)
    parts = draw(st.lists(segments, min_size=1, max_size=4))
    lead = draw(st.sampled_from(["", "", "/", "../"])) if hostile else ""
    return lead + "/".join(parts)


@st.composite
def hostile_entries(draw: st.DrawFn) -> list[tuple[str, str, str | None]]:
    """(type, path, link or hard link target) for 1-5 entries; one manifest in five is made of
    harmless segments only (a control: some of those restore)."""
    hostile = draw(st.integers(0, 4)) > 0
    entries = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink"]))
        to = _path(draw, hostile) if kind in ("symlink", "hardlink") else None
        entries.append((kind, _path(draw, hostile), to))
    return entries


def _obviously_hostile(entries: list[tuple[str, str, str | None]]) -> bool:
    """An oracle of its own: a path that is absolute or has an empty, '.', '..' or NUL part."""
    for kind, path, to in entries:
        if path.startswith("/") or "\0" in path:
            return True
        if any(part in ("", ".", "..") for part in path.split("/")):
            return True
        # a link may point anywhere (its target is data), but a NUL cannot be stored in one
        if kind == "symlink" and to is not None and "\0" in to:
            return True
    return False


def test_manifests_of_hostile_segments_never_write_outside_the_target(
    tmp_path: Path, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    bed = make_bed(tmp_path)
    counts = {"tried": 0, "refused": 0, "restored": 0}

    @settings(
        max_examples=150,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(hostile_entries())
    def check(entries: list[tuple[str, str, str | None]]) -> None:
        body = []
        for kind, path, to in entries:
            if kind == "file":
                body.append(_file(bed, path))
            elif kind == "dir":
                body.append(_dir(path))
            elif kind == "symlink":
                body.append(_link(path, to or "x"))
            else:
                body.append(_hard(path, to or "x"))
        sid = bed.put(body)
        before = tree_state(bed.place)
        hostile = _obviously_hostile(entries)
        try:
            bed.repo.restore(sid, bed.target)
        except SbxError as exc:
            counts["tried"] += 1
            problem = clear_message(exc, [sid])
            assert problem is None, f"{entries}: {problem}"
            assert isinstance(exc, UnsupportedFormat) or "Nothing was" in str(exc), exc
            assert tree_state(bed.place) == before, f"{entries}: wrote beside the target"
            counts["refused"] += 1
            return
        # restored: it must have been harmless, and everything stays inside the target
        assert not hostile, f"{entries} was restored"
        leaks = escapes(bed.target)
        assert not leaks, f"{entries}: {leaks}"
        restored = tree_state(bed.place)
        assert {k: v for k, v in restored.items() if not k.startswith("target")} == before
        counts["restored"] += 1
        _remove(bed.target)

    check()
    fault_figures.add(
        request.node.name, bad_inputs_tried=counts["tried"], bad_inputs_refused=counts["refused"]
    )
    # the strategy must mostly make hostile manifests, and some harmless ones as a control
    assert counts["tried"] > 50 and counts["restored"] > 0, counts


def _remove(target: Path) -> None:
    for dirpath, dirnames, _ in os.walk(target):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o700)
    shutil.rmtree(target)


# -- a few through the real CLI: what the operator sees -------------------------------------


def test_sbx_restore_refuses_crafted_input_with_one_clear_message(
    tmp_path: Path,
    prefect_server: str,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))
    from helpers import SBX, cli_env

    bed = make_bed(tmp_path / "a")
    traversal = bed.put([_file(bed, "../sentinel/pwned")])
    mismatch = bed.put([{**_file(bed, "f"), "hash": "0" * 64}])
    newer = make_bed(tmp_path / "b")
    _repo_file(_info(version=2))(newer)
    cases = {
        "traversal": (bed, traversal, 1, [traversal, "'..'", "Nothing was written"]),
        "hash mismatch": (bed, mismatch, 1, [mismatch, "the manifest says", "sbx verify"]),
        "repository of a newer sbx": (newer, "latest", 2, [str(newer.repo_dir), "upgrade sbx"]),
    }
    env = cli_env(prefect_server)
    running = {}
    before = {name: tree_state(case[0].place) for name, case in cases.items()}
    for name, (where, sid, _, _) in cases.items():
        target = where.place / f"target-{name.replace(' ', '-')}"
        argv = ["restore", sid, "--repo", str(where.repo_dir), "--to", str(target)]
        argv += ["--stack", str(tmp_path / "no-stack")]
        running[name] = subprocess.Popen(
            [*SBX, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    for name, proc in running.items():
        where, _, code, texts = cases[name]
        _, stderr = proc.communicate(timeout=300)
        fault_figures.add(request.node.name, bad_inputs_tried=1)
        assert proc.returncode == code, f"{name}: exit {proc.returncode}\n{stderr[-3000:]}"
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        message = " ".join(stderr.split())
        assert "error:" in message, f"{name}: {stderr[-3000:]}"
        for text in texts:
            assert text in message, f"{name}: {text!r} not in {last}"
        assert tree_state(where.place) == before[name], f"{name}: wrote beside the target"
        fault_figures.add(request.node.name, bad_inputs_refused=1)
