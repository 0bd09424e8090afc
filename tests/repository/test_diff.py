"""The diff engine (sbx/repository/diff.py) on generated file sets: a snapshot diffed with itself
is empty, A→B and B→A are mirror images, and applying A→B's changes to A's files gives B's."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sbx.repository.diff import Change, EntryState, diff_entries, diff_snapshots
from sbx.repository.format import Entry, Extent, PartRecord, SnapshotManifest

OBJECT = "ab" * 32
MIRROR = {"+": "-", "-": "+", "M": "M", "U": "U", "T": "T"}


@st.composite
def entries(draw: st.DrawFn, path: str) -> tuple[str, Entry]:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink"]))
    size = draw(st.sampled_from([0, 3, 10])) if kind == "file" else 0
    entry = Entry(
        path=path,
        type=kind,
        mode=draw(st.sampled_from([0o644, 0o600, 0o755])),
        uid=draw(st.sampled_from([0, 1000])),
        gid=draw(st.sampled_from([0, 1000])),
        mtime_ns=draw(st.integers(0, 3)),  # never a change on its own
        size=size,
        hash=draw(st.sampled_from(["h1", "h2"])) if kind == "file" else None,
        extents=[Extent(OBJECT, 0, size)] if size else [],
        link_target=draw(st.sampled_from(["x", "../y"])) if kind == "symlink" else None,
        hardlink_to=draw(st.sampled_from(["a", "b"])) if kind == "hardlink" else None,
        xattrs=draw(st.sampled_from([None, {"user.k": "dg=="}])),
    )
    return draw(st.sampled_from(["configs", "agent-configs"])), entry


@st.composite
def file_sets(draw: st.DrawFn) -> list[tuple[str, Entry]]:
    paths = draw(st.sets(st.sampled_from(["a", "b", "c", "d", "d/e", "d/f", "g/h"]), max_size=7))
    return [draw(entries(path)) for path in sorted(paths)]


def states(file_set: list[tuple[str, Entry]]) -> dict[str, EntryState]:
    return {entry.path: EntryState.of(entry) for _, entry in file_set}


def apply(start: dict[str, EntryState], changes: list[Change]) -> dict[str, EntryState]:
    result = dict(start)
    for change in changes:
        if change.code == "-":
            assert change.path in result
            del result[change.path]
        else:
            assert (change.path in result) == (change.code != "+")
            assert change.after is not None
            result[change.path] = change.after
    return result


@settings(max_examples=100, deadline=None)
@given(file_sets())
def test_a_snapshot_diffed_with_itself_is_empty(a: list[tuple[str, Entry]]) -> None:
    assert diff_entries(a, a) == []


@settings(max_examples=100, deadline=None)
@given(file_sets(), file_sets())
def test_a_to_b_and_b_to_a_are_mirror_images(
    a: list[tuple[str, Entry]], b: list[tuple[str, Entry]]
) -> None:
    forward, backward = diff_entries(a, b), diff_entries(b, a)
    assert [c.path for c in forward] == [c.path for c in backward]
    for there, back in zip(forward, backward, strict=True):
        assert back.code == MIRROR[there.code]
        assert (back.before, back.after, back.what) == (there.after, there.before, there.what)


@settings(max_examples=100, deadline=None)
@given(file_sets(), file_sets())
def test_applying_a_to_b_to_a_gives_b(
    a: list[tuple[str, Entry]], b: list[tuple[str, Entry]]
) -> None:
    changes = diff_entries(a, b)
    assert apply(states(a), changes) == states(b)
    assert len(changes) == len({c.path for c in changes})  # one line per path


def _entry(path: str, **fields: object) -> Entry:
    size = int(fields.pop("size", 3))  # type: ignore[call-overload]
    base: dict[str, object] = {"type": "file", "mode": 0o644, "size": size, "hash": "h1"}
    base["extents"] = [Extent(OBJECT, 0, size)] if size else []
    return Entry(path=path, **{**base, **fields})  # type: ignore[arg-type]


def _manifest(snapshot_id: str, **parts: list[Entry]) -> SnapshotManifest:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return SnapshotManifest(
        id=snapshot_id,
        created_at=now,
        finished_at=now,
        host="box",
        sbx_version="0",
        parts=[PartRecord(name=name, method="copy", entries=e) for name, e in parts.items()],
    )


def test_codes_what_changed_counts_and_part_filter() -> None:
    a = _manifest(
        "20260101T000000Z-00000aaa",
        configs=[_entry("env"), _entry("env/a.env"), _entry("gone"), _entry("ln"), _entry("m")],
        notes=[_entry("notes/x")],
    )
    b = _manifest(
        "20260101T000001Z-00000bbb",
        configs=[
            _entry("env", mode=0o600, uid=1000),
            _entry("env/a.env", hash="h2", size=5),
            _entry("ln", type="symlink", size=0, hash=None, link_target="m"),
            _entry("m", mtime_ns=99),  # touched only: no change
            _entry("new"),
        ],
        notes=[_entry("notes/x", hash="h2")],
    )
    result = diff_snapshots(a, b)
    lines = [(c.code, c.path, c.what) for c in result.changes]
    assert lines == [
        ("U", "env", ("mode", "owner")),
        ("M", "env/a.env", ("content", "size")),
        ("-", "gone", ()),
        ("T", "ln", ("type",)),
        ("+", "new", ()),
        ("M", "notes/x", ("content",)),
    ]
    counts = result.counts
    assert (counts.files_new, counts.files_removed, counts.files_changed) == (1, 2, 3)
    assert (counts.others_new, counts.bytes_added, counts.bytes_removed) == (1, 11, 12)
    only = diff_snapshots(a, b, ["notes"])
    assert [c.path for c in only.changes] == ["notes/x"] and only.parts == ["notes"]


def test_one_line_per_change_at_80_columns_cut_in_the_middle() -> None:
    from sbx.cli.diff import change_line

    long_path = "agents/" + "deep-folder/" * 10 + "allowlist.txt"
    before = EntryState(type="symlink", link="short")
    after = EntryState(type="symlink", link="/very/long/target/" + "x" * 100, mode=0o600)
    link = Change(code="M", path=long_path, part="p", what=("link", "mode"), before=before,
                  after=after)  # fmt: skip
    line = change_line(link, 80)
    assert len(line) <= 80 and line.startswith("M    agents/deep") and "allowlist.txt" in line
    assert "link short → " in line and line.endswith("→ 0600)")
    added = Change(code="+", path=long_path + "\nx", part="p", after=after)
    assert "\n" not in change_line(added, 80) and len(change_line(added, 80)) <= 80
