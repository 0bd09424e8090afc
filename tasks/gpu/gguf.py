"""The metadata of a GGUF file (llama.cpp's format), read from its header only, never its tensors.

Layout, as llama.cpp's ``ggml/include/gguf.h`` and ``gguf-py/gguf/constants.py`` describe it
(little-endian): ``GGUF`` magic, uint32 version (2 or 3; version 1 had 32-bit counts and is not
read), uint64 tensor count, uint64 key/value count, then each pair as a string key (uint64 length
+ UTF-8 bytes), a uint32 value type and the value. Strings and arrays are skipped by seeking, so
a 150,000-entry tokenizer vocabulary costs one small read per entry of a string array and nothing
for a numeric one. The llama.cpp ``gguf`` package would do the same but brings numpy; a header
this simple is cheaper to read by hand than to depend on.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

GGUF_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_MAX_STRING = 16 << 20  # a key or string value longer than this is a damaged header
_MAX_COUNT = 1 << 32  # more array items or key/value pairs than this: damaged as well

# value type id → struct format of one scalar (gguf.h GGUF_TYPE_*); 8 is STRING, 9 is ARRAY
_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}  # fmt: skip
STRING, ARRAY = 8, 9


class GgufError(ValueError):
    """The file is not a GGUF file this reader understands (said why, with the offset)."""


def read_gguf_metadata(path: Path, keys: set[str] | None = None) -> dict[str, Any]:
    """The header's key/value pairs (all of them, or only ``keys``, stopping once all are seen).

    Arrays of numbers come back as lists; arrays of strings are skipped (``None``): only the
    tokenizer keeps them, and nothing here needs it.
    """
    with path.open("rb") as f:
        return read_gguf_stream(f, keys)


def read_gguf_stream(f: IO[bytes], keys: set[str] | None = None) -> dict[str, Any]:
    """:func:`read_gguf_metadata` of an open binary stream, from its start."""
    magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise GgufError(f"not a GGUF file (starts with {magic!r}, not b'GGUF')")
    (version,) = _unpack(f, "<I")
    if version not in _SUPPORTED_VERSIONS:
        swapped = struct.unpack(">I", struct.pack("<I", version))[0]
        hint = " (a big-endian file)" if swapped in _SUPPORTED_VERSIONS else ""
        raise GgufError(f"GGUF version {version}{hint} is not read (versions 2 and 3 are)")
    _tensors, count = _unpack(f, "<QQ")
    if count > _MAX_COUNT:
        raise GgufError(f"{count} metadata pairs is not plausible")
    found: dict[str, Any] = {}
    for _ in range(count):
        key = _string(f)
        (kind,) = _unpack(f, "<I")
        wanted = keys is None or key in keys
        value = _value(f, kind, keep=wanted)
        if wanted:
            found[key] = value
            if keys is not None and keys <= found.keys():
                break
    return found


def _value(f: IO[bytes], kind: int, *, keep: bool) -> Any:
    if kind in _SCALARS:
        (value,) = _unpack(f, _SCALARS[kind])
        return value
    if kind == STRING:
        return _string(f) if keep else _skip_string(f)
    if kind == ARRAY:
        item_kind, count = _unpack(f, "<IQ")
        if count > _MAX_COUNT:
            raise GgufError(f"an array of {count} items at byte {f.tell()} is not plausible")
        if item_kind in _SCALARS:
            fmt = _SCALARS[item_kind]
            size = struct.calcsize(fmt)
            if not keep:
                f.seek(size * count, 1)
                return None
            raw = _read(f, size * count)
            return [v for (v,) in struct.iter_unpack(fmt, raw)]
        for _ in range(count):  # strings or nested arrays: walked, never kept
            _value(f, item_kind, keep=False)
        return None
    raise GgufError(f"unknown value type {kind} at byte {f.tell() - 4}")


def _string(f: IO[bytes]) -> str:
    (length,) = _unpack(f, "<Q")
    if length > _MAX_STRING:
        raise GgufError(f"a string of {length} bytes at byte {f.tell() - 8} is not plausible")
    return _read(f, length).decode("utf-8", errors="replace")


def _skip_string(f: IO[bytes]) -> None:
    (length,) = _unpack(f, "<Q")
    if length > _MAX_STRING:
        raise GgufError(f"a string of {length} bytes at byte {f.tell() - 8} is not plausible")
    f.seek(length, 1)


def _unpack(f: IO[bytes], fmt: str) -> tuple[Any, ...]:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))


def _read(f: IO[bytes], size: int) -> bytes:
    at = f.tell()
    raw = f.read(size)
    if len(raw) != size:
        raise GgufError(f"the header ends early (wanted {size} bytes at byte {at})")
    return raw


def write_gguf_header(path: Path, metadata: dict[str, Any], *, version: int = 3) -> None:
    """A GGUF file with ``metadata`` and no tensors (see :func:`gguf_header`)."""
    path.write_bytes(gguf_header(metadata, version=version))


def gguf_header(metadata: dict[str, Any], *, version: int = 3) -> bytes:
    """The header of a GGUF file with ``metadata`` and no tensors (for tests and scripts).

    ints become UINT32 (INT64 when negative or large), floats FLOAT32, bools BOOL, strings STRING,
    lists of ints arrays of INT32, lists of strings arrays of STRING.
    """
    out = bytearray(GGUF_MAGIC + struct.pack("<IQQ", version, 0, len(metadata)))
    for key, value in metadata.items():
        out += _encode_string(key) + _encode_value(value)
    return bytes(out)


def _encode_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        if 0 <= value < 1 << 32:
            return struct.pack("<II", 4, value)
        return struct.pack("<Iq", 11, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", STRING) + _encode_string(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        items = b"".join(_encode_string(v) for v in value)
        return struct.pack("<IIQ", ARRAY, STRING, len(value)) + items
    if isinstance(value, list):
        return struct.pack("<IIQ", ARRAY, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
    raise TypeError(f"cannot write {type(value).__name__} into a GGUF header")


def _encode_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw
