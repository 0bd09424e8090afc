"""Manifest models: ids, entry rules, and what loading refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from repository.helpers import manifest_dict
from sbx.errors import ManifestInvalid, UnsupportedFormat
from sbx.repository.format import (
    SNAPSHOT_ID_RE,
    Entry,
    Extent,
    new_snapshot_id,
)
from sbx.repository.manifest_json import parse_manifest

SID = "20260102T030405Z-0badc0de"
HASH = "a" * 64


def test_snapshot_ids_are_utc_and_sort_by_time() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 10, tzinfo=UTC)
    ids = [new_snapshot_id(moment.replace(microsecond=us)) for us in (10, 11, 999_999)]
    assert all(SNAPSHOT_ID_RE.match(i) for i in ids)
    assert ids[0].startswith("20260102T030405Z-") and ids == sorted(ids)


def test_entry_rules() -> None:
    Entry(path="f", type="file", mode=0o644, hash=HASH, size=3, extents=[Extent(HASH, 0, 3)])
    with pytest.raises(ValidationError, match="content hash"):
        Entry(path="f", type="file", mode=0o644)
    with pytest.raises(ValidationError, match="do not add up"):
        Entry(path="f", type="file", mode=0o644, hash=HASH, size=4, extents=[Extent(HASH, 0, 3)])
    grown = Entry(path="f", type="file", mode=0o644, hash=HASH, size=2, read_size=3,
                  extents=[Extent(HASH, 0, 3)])  # fmt: skip
    assert grown.content_size == 3
    with pytest.raises(ValidationError, match="link_target"):
        Entry(path="l", type="symlink", mode=0o777)
    with pytest.raises(ValidationError, match="hardlink_to"):
        Entry(path="h", type="hardlink", mode=0o644)
    with pytest.raises(ValidationError):
        Entry(path="d", type="dir", mode=0o10000)


def _parse(data: dict[str, object]) -> None:
    parse_manifest(json.dumps(data).encode(), f"snapshot {SID}")


def test_duplicate_paths_across_parts_are_refused() -> None:
    data = manifest_dict(SID, [{"path": "a", "type": "dir", "mode": 0o755}])
    data["parts"].append({**data["parts"][0], "name": "notes"})
    with pytest.raises(ManifestInvalid, match=r"'a' appears twice \(parts 'configs' and 'notes'"):
        _parse(data)


def test_load_errors_name_the_entry() -> None:
    bad = manifest_dict(SID, [{"path": "x/y", "type": "file", "mode": 0o644}])
    with pytest.raises(ManifestInvalid, match="entry 'x/y' of part 'configs': a file entry"):
        _parse(bad)


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        (b"", ManifestInvalid, "truncated or not JSON"),
        (b"[1, 2]", ManifestInvalid, "not a JSON object"),
        (b'{"schema_version": 7}', UnsupportedFormat, "version 7, this sbx reads version 1"),
        (b'{"schema_version": "1"}', ManifestInvalid, "schema_version is '1', expected 1"),
        (b"\xff\xfe", ManifestInvalid, "truncated or not JSON"),
    ],
)
def test_unreadable_manifests(raw: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_manifest(raw, "snapshot X")
