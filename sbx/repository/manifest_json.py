"""Manifests to and from JSON text one entry at a time, so memory stays near the models' own.

A manifest holds one entry per file. Going through a dict per entry (``model_dump``, then
``json.dumps``; ``json.loads``, then ``model_validate``) costs about 1.5 KiB per entry on top of
the models: at 100,000 files that was a peak of +150 MiB in every backup and restore. pydantic's
``model_validate_json`` is no better (it parses the whole text into a tree first). So the two
outer levels (manifest, parts) are scanned here (``json_scan``, from a stream, a block at a
time), and each entry is decoded, validated and dropped before the next; writing goes to a
stream too. The text is the same JSON as ``dump_model`` writes.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from sbx.errors import ManifestInvalid, UnsupportedFormat
from sbx.repository.format import (
    MANIFEST_SCHEMA_VERSION,
    Entry,
    SnapshotManifest,
    describe_error,
    dump_json,
)
from sbx.repository.json_scan import JsonScanner

_ENTRY: Final = TypeAdapter(Entry)
_ENTRY_FIELDS: Final = tuple(Entry.__dataclass_fields__)
_Model = TypeVar("_Model", bound=BaseModel)


def dump_manifest(manifest: SnapshotManifest) -> bytes:
    """The manifest's stored text (:func:`write_manifest` into memory)."""
    out = io.BytesIO()
    write_manifest(manifest, out)
    return out.getvalue()  # hands over BytesIO's buffer: no copy


def write_manifest(manifest: SnapshotManifest, out: BinaryIO) -> None:
    """Write the manifest as ``dump_model`` would, one entry at a time."""
    head = manifest.model_dump(mode="json", exclude_none=True, exclude={"parts"})
    first = True
    for name in SnapshotManifest.model_fields:
        if name != "parts" and name not in head:
            continue
        out.write(b"{" if first else b",")
        first = False
        if name != "parts":
            out.write(f"{dump_json(name)}:{dump_json(head[name])}".encode("ascii"))
            continue
        out.write(b'"parts":[')
        for index, part in enumerate(manifest.parts):
            fields = dump_json(part.model_dump(mode="json", exclude_none=True, exclude={"entries"}))
            out.write(f'{"," if index else ""}{fields[:-1]},"entries":['.encode("ascii"))
            for number, entry in enumerate(part.entries):
                text = dump_json(_entry_fields(entry))
                out.write(f",{text}".encode("ascii") if number else text.encode("ascii"))
            out.write(b"]}")
        out.write(b"]")
    out.write(b"}")


def _entry_fields(entry: Entry) -> dict[str, Any]:
    # what model_dump(mode="json", exclude_none=True) gives, at a fraction of its cost: the
    # named tuples (extents, stat_key) become JSON arrays by themselves
    return {name: value for name in _ENTRY_FIELDS if (value := getattr(entry, name)) is not None}


def parse_manifest(source: bytes | BinaryIO, where: str) -> SnapshotManifest:
    """Validate a stored manifest, its text or a stream of it (read a block at a time);
    :class:`ManifestInvalid` or :class:`UnsupportedFormat`."""
    return validate_manifest(SnapshotManifest, scan_manifest(source, where, entries=True), where)


def validate_manifest(model: type[_Model], data: dict[str, Any], where: str) -> _Model:
    """``data`` (from :func:`scan_manifest`) as ``model``; :class:`ManifestInvalid` naming the
    field when it does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid(where, describe_error(exc)) from exc


def scan_manifest(source: bytes | BinaryIO, where: str, *, entries: bool) -> dict[str, Any]:
    """A stored manifest as a dict, its version checked; each part's entries validated into
    :class:`Entry`, or with ``entries=False`` read past and left out (listings: a part's
    ``stats`` say what a listing shows, at a fraction of the cost)."""
    scanner = JsonScanner(io.BytesIO(source) if isinstance(source, bytes) else source)
    reader = _EntryReader(entries)
    try:
        data = _document(scanner, reader)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise ManifestInvalid(where, f"it is truncated or not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestInvalid(where, "it is not a JSON object")
    version = data.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        if isinstance(version, int) and version > MANIFEST_SCHEMA_VERSION:
            raise UnsupportedFormat(f"Manifest of {where}", version, MANIFEST_SCHEMA_VERSION)
        raise ManifestInvalid(where, f"schema_version is {version!r}, expected 1")
    if reader.problem is not None:  # after the version: a newer format may shape entries anew
        raise ManifestInvalid(where, reader.problem)
    return data


def _document(scanner: JsonScanner, reader: _EntryReader) -> Any:
    if scanner.peek() != "{":
        data = scanner.value()
    else:
        data = {}
        for key in scanner.members():
            if key == "parts" and scanner.peek() == "[":
                data[key] = list(scanner.items(lambda: reader.read_part(scanner)))
            else:
                data[key] = scanner.value()
    scanner.end()
    return data


class _EntryReader:
    """Turns each part's entries into :class:`Entry` as they are scanned (or, ``keep`` False,
    drops them); keeps the first problem (the manifest's version is checked before it is
    reported)."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.problem: str | None = None
        self._parts = 0
        self._ids: dict[str, str] = {}

    def read_part(self, scanner: JsonScanner) -> Any:
        if scanner.peek() != "{":
            return scanner.value()  # not a part: the model says so
        self._parts += 1
        part: dict[str, Any] = {}
        for key in scanner.members():
            if key != "entries" or scanner.peek() != "[":
                part[key] = scanner.value()  # not a list of entries: the model says so
                continue
            if not self.keep:
                for _ in scanner.items(scanner.value):
                    pass
                continue
            label = repr(part["name"]) if isinstance(part.get("name"), str) else f"#{self._parts}"
            part[key] = [self._entry(item, label) for item in scanner.items(scanner.value)]
        return part

    def _entry(self, item: Any, part: str) -> Any:
        if self.problem is not None:
            return item
        if isinstance(item, dict) and isinstance(item.get("extents"), list):
            for extent in item["extents"]:  # the files of one pack share one id string
                if isinstance(extent, list) and extent and isinstance(extent[0], str):
                    extent[0] = self._ids.setdefault(extent[0], extent[0])
        try:
            return _ENTRY.validate_python(item)
        except ValidationError as exc:
            path = item.get("path") if isinstance(item, dict) else None
            self.problem = describe_error(exc, f"entry {path!r} of part {part}")
            return item
