"""Stand-in for Qdrant's REST API (the stack's `qdrant` service), standard library only.

No Qdrant image or binary can be had on the test bed, so this one file speaks enough of
Qdrant's HTTP API (port 6333; no gRPC) for the real `QdrantClient(url=..., prefer_grpc=False)`
and for sbx's backup path (snapshot, download, upload, recover). Every JSON answer has Qdrant's
envelope `{"result": ..., "status": "ok", "time": s}`, errors are
`{"status": {"error": msg}, "time": s}`, and each `result` validates against the client's
pydantic models (qdrant_client.http.models).

    GET  /  /healthz /livez /readyz /telemetry /cluster /metrics /aliases
    GET|PUT|PATCH|DELETE /collections/{c}        GET /collections, /collections/{c}/exists|cluster
    PUT  /collections/{c}/points                  upsert: {"points": [...]} or {"batch": {...}}
    POST /collections/{c}/points[/scroll|count|delete|search|query]
    GET  /collections/{c}/points/{id}
    PUT  /collections/{c}/index                   DELETE /collections/{c}/index/{field}
    GET|POST /collections/{c}/snapshots           GET|DELETE /collections/{c}/snapshots/{name}
    PUT  /collections/{c}/snapshots/recover       {"location": "file://..." | "http(s)://..."}
    POST /collections/{c}/snapshots/upload        multipart/form-data, field "snapshot"
    (POST .../snapshots and .../upload take ?wait=false: 202 "accepted", the work goes on
    behind; the upload takes ?checksum=<sha256 hex>, refused 400 when the file differs)
    GET|POST /snapshots                           GET|DELETE /snapshots/{name} (full snapshots)

Settings are read as Qdrant reads them (src/settings.rs), each source over the last: the
defaults, config/config, config/$RUN_MODE (development when unset; the image sets production, as
upstream's does), config/local (each the first of .yaml, .yml, .json, .toml that exists, relative
to the working directory: /qdrant in the image, as upstream's WORKDIR), the file given with
`--config-path FILE` (only a warning when it is missing), then QDRANT__SECTION__KEY variables.
Honoured: service.host (0.0.0.0), service.http_port (6333), service.api_key,
service.read_only_api_key, storage.storage_path (./storage), storage.snapshots_path
(./snapshots). YAML is read by a small parser (block mappings and sequences, flow {..} and [..],
plain and quoted scalars, comments); a file that does not parse stops the start, exit 1 and
`Error: <what> in <file>` on stderr, as Qdrant's main returns the config error.

Storage mirrors Qdrant's layout: storage.storage_path (/qdrant/storage) holds
collections/<name>/collection.json (config + points), rewritten atomically on every change and
loaded at start, so data survives a container restart. Snapshots live in
storage.snapshots_path (/qdrant/snapshots): <name>/<name>-<peer id>-<time>.snapshot per
collection, full-snapshot-<time>.snapshot at the top, each a tar of collection JSON files with a
sha256 `.checksum` file beside it, as Qdrant writes one. An uploaded snapshot is kept, as Qdrant
keeps it: saved under its multipart file name in <name>/, then recovered from there
(src/actix/api/snapshot_api.rs do_save_uploaded_snapshot; a file:// source is never deleted). Like Qdrant, Cosine vectors are stored
normalised. Filters support must/should/must_not with match, range, has_id, is_empty, is_null.
service.api_key and service.read_only_api_key (either set: every path but
`/`, `/healthz` and `/readyz*`, `/livez*` wants a key as the `api-key` header or an
`Authorization: Bearer` token, else 401 as plain text like Qdrant's auth middleware; the
read-only key may GET and POST searches, counts and scrolls, anything else answers 403).
The stand-in's own environment: QDRANT_STANDIN_VERSION (reported version; see VERSION),
QDRANT_STANDIN_SNAPSHOT_DELAY_S (seconds every snapshot takes to make, 0: a test's large
collection, without the data).
Each collection's folder holds version.info, the version that last loaded it: a start on a
collection a newer version stamped fails (exit 1), an older stamp is migrated (see
check_storage_version): as Qdrant, data a newer release opened is not for an older one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

# qdrant-client warns (an error under pytest's -W error) when the server's major.minor is more
# than one minor away from its own, so this follows the client pinned in sbx's uv.lock (1.20.x)
VERSION = os.environ.get("QDRANT_STANDIN_VERSION", "1.20.0")
# Qdrant's own settings: main() sets them from the config files and the variables (load_settings)
STORAGE = Path("storage")
SNAPSHOTS = Path("snapshots")
API_KEY: str | None = None
READ_ONLY_API_KEY: str | None = None
SNAPSHOT_DELAY_S = float(os.environ.get("QDRANT_STANDIN_SNAPSHOT_DELAY_S") or 0)
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
PEER_ID = 5_404_186_327_462_811  # a fixed peer id; real Qdrant picks a random one per install
DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
NAME_RE = re.compile(r"^[^/\\\x00]{1,255}$")  # names become file names: no separators, no NUL

DEFAULT_HNSW = {
    "m": 16,
    "ef_construct": 100,
    "full_scan_threshold": 10000,
    "max_indexing_threads": 0,
    "on_disk": False,
}
DEFAULT_OPTIMIZER = {
    "deleted_threshold": 0.2,
    "vacuum_min_vector_number": 1000,
    "default_segment_number": 0,
    "max_segment_size": None,
    "memmap_threshold": None,
    "indexing_threshold": 10000,
    "flush_interval_sec": 5,
    "max_optimization_threads": None,
}
DEFAULT_WAL = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}

Json = dict[str, Any]
PointKey = tuple[int, Any]  # (0, int id) or (1, uuid string): Qdrant orders integer ids first


class QError(Exception):
    """An error answered as Qdrant does: `{"status": {"error": message}}` with an HTTP code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def not_found(name: str) -> QError:
    return QError(404, f"Not found: Collection `{name}` doesn't exist!")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat()


def check_name(name: str, what: str = "collection") -> str:
    if not NAME_RE.match(name) or name in (".", ".."):
        raise QError(400, f"Validation error in path parameters: invalid {what} name {name!r}")
    return name


def point_key(raw: Any) -> PointKey:
    """Qdrant ids are unsigned integers or UUIDs (any UUID spelling, stored hyphenated)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return (0, raw)
    if isinstance(raw, str):
        try:
            return (1, str(uuid.UUID(raw)))
        except ValueError:
            pass
    raise QError(
        400,
        f"Format error in JSON body: value {raw!r} is not a valid point ID, valid "
        "values are either an unsigned integer or a UUID",
    )


def atomic_write(path: Path, data: bytes) -> None:
    """tmp + fsync + rename + fsync(dir): a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- settings: config files, then QDRANT__* variables (src/settings.rs) ----------------------


class ConfigError(ValueError):
    """A config file Qdrant would refuse: the stand-in exits 1 naming the file."""


CONFIG_EXTENSIONS = (".yaml", ".yml", ".json", ".toml")
# the settings the stand-in honours, with upstream's defaults (its embedded config/config.yaml)
HONOURED: dict[tuple[str, str], Any] = {
    ("service", "host"): "0.0.0.0",
    ("service", "http_port"): 6333,
    ("service", "api_key"): None,
    ("service", "read_only_api_key"): None,
    ("storage", "storage_path"): "./storage",
    ("storage", "snapshots_path"): "./snapshots",
}


def config_files(config_path: str | None) -> list[Path]:
    """The files Qdrant merges, lowest first: config/config, config/$RUN_MODE (development
    when unset), config/local, each the first of its extensions that exists, relative to the
    working directory; then --config-path (upstream only warns when that one is missing)."""
    run_mode = os.environ.get("RUN_MODE", "development")
    found = []
    for stem in ("config/config", f"config/{run_mode}", "config/local"):
        found += [p for p in (Path(stem + ext) for ext in CONFIG_EXTENSIONS) if p.is_file()][:1]
    if config_path:
        if Path(config_path).is_file():
            found.append(Path(config_path))
        else:
            sys.stderr.write(f"Config file via --config-path is not found: {config_path}\n")
    return found


def read_config(path: Path) -> Json:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = parse_yaml(text)
        else:
            raise ValueError(f"unsupported config format {path.suffix!r}")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{exc} in {path}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid type: expected a map at the top level in {path}")
    return data


def merge(base: Json, over: Json) -> Json:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def load_settings(config_path: str | None) -> dict[tuple[str, str], Any]:
    """The honoured settings: each file over the last, then QDRANT__SECTION__KEY variables
    (set, even empty, they win: the config crate keeps empty values)."""
    merged: Json = {}
    for path in config_files(config_path):
        merged = merge(merged, read_config(path))
    out = dict(HONOURED)
    for section, key in HONOURED:
        part = merged.get(section)
        if isinstance(part, dict) and part.get(key) is not None:
            out[section, key] = part[key]
        env = os.environ.get(f"QDRANT__{section.upper()}__{key.upper()}")
        if env is not None:
            out[section, key] = env
    try:
        out["service", "http_port"] = int(out["service", "http_port"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"service.http_port: {exc}") from exc
    return out


# A YAML reader for what config files hold (stdlib has none): block mappings, block sequences
# of scalars, flow {..} and [..], plain and quoted scalars, comments. Anything else is refused.
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def parse_yaml(text: str) -> Any:
    lines: list[tuple[int, int, str]] = []  # (line number, indent, content)
    for n, raw in enumerate(text.splitlines(), 1):
        body = _strip_comment(raw).rstrip()
        if not body.strip() or body in ("---", "..."):
            continue
        content = body.lstrip(" ")
        if content.startswith("\t"):
            raise ValueError(f"tabs are not allowed in indentation at line {n}")
        lines.append((n, len(body) - len(content), content))
    if not lines:
        return None
    value, pos = _yaml_block(lines, 0, lines[0][1])
    if pos < len(lines):
        raise ValueError(f"did not find expected key (bad indentation) at line {lines[pos][0]}")
    return value


def _strip_comment(line: str) -> str:
    """The line without its comment: a `#` at the start or after a blank, outside quotes."""
    quote, i = "", 0
    while i < len(line):
        c = line[i]
        if quote:  # skip an escape (\x in "..", '' in '..'), or leave at the closing quote
            escaped = c == "\\" if quote == '"' else line[i : i + 2] == "''"
            quote = "" if c == quote and not escaped else quote
            i += 2 if escaped else 1
            continue
        if c in "\"'" and (i == 0 or line[i - 1] in " :{[,-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
        i += 1
    return line


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _yaml_block(lines: list[tuple[int, int, str]], pos: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[pos][2]):
        items = []
        while pos < len(lines) and lines[pos][1] == indent and _is_item(lines[pos][2]):
            n, rest = lines[pos][0], lines[pos][2][1:].strip()
            pos += 1
            if rest and _split_key(rest, n, strict=False):
                raise ValueError(f"the stand-in reads no mappings in sequences (line {n})")
            if rest:
                items.append(_yaml_scalar(rest, n))
            elif pos < len(lines) and lines[pos][1] > indent:
                value, pos = _yaml_block(lines, pos, lines[pos][1])
                items.append(value)
            else:
                items.append(None)
        return items, pos
    mapping: Json = {}
    while pos < len(lines) and lines[pos][1] == indent and not _is_item(lines[pos][2]):
        n, content = lines[pos][0], lines[pos][2]
        key, rest = _split_key(content, n) or ("", "")
        if key in mapping:
            raise ValueError(f"duplicated key {key!r} at line {n}")
        pos += 1
        nested = pos < len(lines) and (
            lines[pos][1] > indent or (lines[pos][1] == indent and _is_item(lines[pos][2]))
        )
        if rest:
            mapping[key] = _yaml_scalar(rest, n)
        elif nested:
            mapping[key], pos = _yaml_block(lines, pos, lines[pos][1])
        else:
            mapping[key] = None
    return mapping, pos


def _split_key(content: str, n: int, strict: bool = True) -> tuple[str, str] | None:
    """`key: rest` (rest may be empty), the key plain or quoted."""
    if content[0] in "\"'":
        end = content.find(content[0], 1)
        while content[0] == '"' and end > 0 and content[end - 1] == "\\":
            end = content.find('"', end + 1)
        after = content[end + 1 :].lstrip() if end > 0 else ""
        if after == ":" or after.startswith(": "):
            return str(_yaml_scalar(content[: end + 1], n)), after[1:].strip()
    else:
        m = re.match(r"^([^:]*?)\s*:(?:\s+(.*))?$", content)
        if m and content[0] not in "{[":
            return m.group(1), (m.group(2) or "").strip()
    if strict:
        raise ValueError(f"could not find expected ':' (a `key: value` line) at line {n}")
    return None


def _yaml_scalar(text: str, n: int) -> Any:
    if text[0] in "{[":
        value, end = _flow(text, 0, n)
        if text[end:].strip():
            raise ValueError(f"unexpected {text[end:].strip()!r} after a flow value at line {n}")
        return value
    if text[0] == '"':
        try:
            return json.loads(text)  # YAML's double-quoted escapes are JSON's, as far as used
        except ValueError:
            raise ValueError(f"bad double-quoted scalar {text!r} at line {n}") from None
    if text[0] == "'":
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise ValueError(f"bad single-quoted scalar {text!r} at line {n}")
        return text[1:-1].replace("''", "'")
    if text[0] in "&*!|>%@`":
        raise ValueError(f"the stand-in reads no YAML {text[0]!r} (anchor, tag, block) at line {n}")
    if text in ("~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return text.lower() == "true"
    if re.match(r"^[-+]?\d+$", text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def _flow(text: str, i: int, n: int) -> tuple[Any, int]:
    """A flow value from text[i]: {..}, [..], a quoted or a plain scalar; returns the end."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] in "{[":
        close, out = ("}", {}) if text[i] == "{" else ("]", [])
        i += 1
        while True:
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == close:
                return out, i + 1
            if isinstance(out, dict):
                key, i = _flow_scalar(text, i, n, ":")
                if text[i : i + 1] != ":":
                    raise ValueError(f"expected ':' in a flow mapping at line {n}")
                out[str(key)], i = _flow(text, i + 1, n)
            else:
                item, i = _flow(text, i, n)
                out.append(item)
            while i < len(text) and text[i] == " ":
                i += 1
            if text[i : i + 1] == ",":
                i += 1
            elif text[i : i + 1] != close:
                raise ValueError(f"did not find expected ',' or {close!r} at line {n}")
    return _flow_scalar(text, i, n, ",]}")


def _flow_scalar(text: str, i: int, n: int, stops: str) -> tuple[Any, int]:
    if text[i : i + 1] in ("'", '"'):
        end = i + 1
        while end < len(text) and (text[end] != text[i] or text[end - 1] == "\\"):
            end += 1
        return _yaml_scalar(text[i : end + 1], n), end + 1
    end = i
    while end < len(text) and text[end] not in stops:
        end += 1
    raw = text[i:end].strip()
    if not raw:
        raise ValueError(f"empty value in a flow collection at line {n}")
    return _yaml_scalar(raw, n), end


# --- collections -----------------------------------------------------------------------------


class Collection:
    def __init__(self, name: str, config: Json, created_at: str | None = None) -> None:
        self.name, self.config = name, config
        self.created_at = created_at or now_iso()
        self.points: dict[PointKey, Json] = {}
        self.payload_schema: Json = {}

    @classmethod
    def from_doc(cls, name: str, doc: Json) -> Collection:
        col = cls(name, doc["config"], doc.get("created_at"))
        col.payload_schema = doc.get("payload_schema", {})
        for p in doc.get("points", []):
            col.points[point_key(p["id"])] = p
        return col

    def to_doc(self) -> Json:
        return {
            "format": "qdrant-standin/1",
            "name": self.name,
            "created_at": self.created_at,
            "config": self.config,
            "payload_schema": self.payload_schema,
            "points": [self.points[k] for k in sorted(self.points)],
        }

    def info(self) -> Json:
        schema = {
            field: {**info, "points": len(self.points)}
            for field, info in self.payload_schema.items()
        }
        return {
            "status": "green",
            "optimizer_status": "ok",
            "warnings": [],
            "indexed_vectors_count": 0,
            "points_count": len(self.points),
            "segments_count": 1,
            "config": self.config,
            "payload_schema": schema,
            "created_at": self.created_at,
        }

    def vector_params(self) -> Json:
        vectors = self.config["params"].get("vectors") or {}
        # a single unnamed vector is stored under "" (the name Qdrant gives it internally)
        return {"": vectors} if "size" in vectors else vectors

    def check_vector(self, vector: Any) -> Any:
        params = self.vector_params()
        named = vector if isinstance(vector, dict) else {"": vector}
        out: Json = {}
        for name, vec in named.items():
            if name not in params:
                if isinstance(vec, dict) and name in (
                    self.config["params"].get("sparse_vectors") or {}
                ):
                    out[name] = vec  # sparse vectors are stored as given
                    continue
                raise QError(400, f"Wrong input: Not existing vector name error: {name}")
            if not isinstance(vec, list) or not all(isinstance(x, (int, float)) for x in vec):
                raise QError(400, f"Wrong input: vector {name!r} must be a list of numbers")
            if len(vec) != params[name]["size"]:
                raise QError(
                    400,
                    "Wrong input: Vector dimension error: expected dim: "
                    f"{params[name]['size']}, got {len(vec)}",
                )
            vec = [float(x) for x in vec]
            if params[name]["distance"] == "Cosine":
                # Qdrant normalises Cosine vectors on upsert and returns them normalised
                norm = math.sqrt(sum(x * x for x in vec)) or 1.0
                vec = [x / norm for x in vec]
            out[name] = vec
        return out[""] if set(out) == {""} else out


def make_config(body: Json) -> Json:
    vectors = body.get("vectors") or {}
    for name, params in ({"": vectors} if "size" in vectors else vectors).items():
        if (
            not isinstance(params, dict)
            or not isinstance(params.get("size"), int)
            or params["size"] < 1
            or params.get("distance") not in DISTANCES
        ):
            raise QError(
                400, f"Wrong input: bad vector params for {name or 'default vector'}: {params!r}"
            )

    def merged(default: Json, diff: Any) -> Json:
        return {**default, **{k: v for k, v in (diff or {}).items() if v is not None}}

    params = {
        "vectors": vectors,
        "shard_number": body.get("shard_number") or 1,
        "replication_factor": body.get("replication_factor") or 1,
        "write_consistency_factor": body.get("write_consistency_factor") or 1,
        "on_disk_payload": body.get("on_disk_payload", True),
    }
    if body.get("sparse_vectors"):
        params["sparse_vectors"] = body["sparse_vectors"]
    return {
        "params": params,
        "hnsw_config": merged(DEFAULT_HNSW, body.get("hnsw_config")),
        "optimizer_config": merged(DEFAULT_OPTIMIZER, body.get("optimizers_config")),
        "wal_config": merged(DEFAULT_WAL, body.get("wal_config")),
        "quantization_config": body.get("quantization_config"),
        "strict_mode_config": {"enabled": False, **(body.get("strict_mode_config") or {})},
        "metadata": body.get("metadata"),
    }


# --- filters and selectors -------------------------------------------------------------------


def values_at(payload: Any, key: str) -> list[Any]:
    """Payload values under a dotted key; arrays fan out, as in Qdrant's key paths."""
    values = [payload]
    for part in key.replace("[]", "").split("."):
        nxt: list[Any] = []
        for v in values:
            if isinstance(v, dict) and part in v:
                got = v[part]
                nxt.extend(got if isinstance(got, list) else [got])
        values = nxt
    return values


def condition_ok(point: Json, cond: Json) -> bool:
    if any(k in cond for k in ("must", "should", "must_not")):
        return filter_ok(point, cond)
    if "has_id" in cond:
        return point_key(point["id"]) in {point_key(i) for i in cond["has_id"]}
    if "is_empty" in cond:
        return not [
            v for v in values_at(point.get("payload"), cond["is_empty"]["key"]) if v is not None
        ]
    if "is_null" in cond:
        return None in values_at(point.get("payload"), cond["is_null"]["key"])
    if "key" not in cond:
        raise QError(400, f"Wrong input: the stand-in does not support condition {cond!r}")
    values = values_at(point.get("payload"), cond["key"])
    if "match" in cond:
        m = cond["match"]
        if "value" in m:
            return m["value"] in values
        if "any" in m:
            return any(v in m["any"] for v in values)
        if "except" in m:
            return not any(v in m["except"] for v in values)
        if "text" in m:
            return any(isinstance(v, str) and m["text"] in v for v in values)
    if "range" in cond:
        r = cond["range"]
        ops: dict[str, Callable[[float, float], bool]] = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        return any(
            isinstance(v, (int, float))
            and all(ops[op](v, bound) for op, bound in r.items() if bound is not None and op in ops)
            for v in values
        )
    raise QError(400, f"Wrong input: the stand-in does not support condition {cond!r}")


def filter_ok(point: Json, flt: Json | None) -> bool:
    if not flt:
        return True

    def as_list(x: Any) -> list[Json]:
        return x if isinstance(x, list) else [x] if x else []

    return (
        all(condition_ok(point, c) for c in as_list(flt.get("must")))
        and (
            not as_list(flt.get("should"))
            or any(condition_ok(point, c) for c in as_list(flt.get("should")))
        )
        and not any(condition_ok(point, c) for c in as_list(flt.get("must_not")))
    )


def record(point: Json, with_payload: Any, with_vector: Any) -> Json:
    """A Record as Qdrant returns it, honouring with_payload / with_vector selectors."""
    payload = point.get("payload") or {}
    if with_payload is False or with_payload is None:
        payload_out = None
    elif isinstance(with_payload, list):
        payload_out = {k: v for k, v in payload.items() if k in with_payload}
    elif isinstance(with_payload, dict) and "include" in with_payload:
        payload_out = {k: v for k, v in payload.items() if k in with_payload["include"]}
    elif isinstance(with_payload, dict) and "exclude" in with_payload:
        payload_out = {k: v for k, v in payload.items() if k not in with_payload["exclude"]}
    else:
        payload_out = payload
    vector = point.get("vector")
    if not with_vector:
        vector = None
    elif isinstance(with_vector, list) and isinstance(vector, dict):
        vector = {k: v for k, v in vector.items() if k in with_vector}
    return {
        "id": point["id"],
        "payload": payload_out,
        "vector": vector,
        "shard_key": None,
        "order_value": None,
    }


def score(distance: str, a: list[float], b: list[float]) -> float:
    if distance in ("Cosine", "Dot"):  # Cosine vectors are stored normalised: a dot product
        return sum(x * y for x, y in zip(a, b, strict=True))
    if distance == "Euclid":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


# --- snapshots -------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot_target(folder: Path, prefix: str) -> Path:
    """Where a new snapshot goes; named, as Qdrant names it, by the time its making began."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
    path, n = folder / f"{prefix}-{stamp}.snapshot", 1
    while path.exists():  # two snapshots in one second must not overwrite each other
        n += 1
        path = folder / f"{prefix}-{stamp}-{n}.snapshot"
    return path


def write_snapshot(path: Path, members: dict[str, bytes]) -> Json:
    """The tar, its `.checksum` first and the snapshot last, each renamed into place: the list
    (which shows `*.snapshot` only) never shows a snapshot that is still being written."""
    time.sleep(SNAPSHOT_DELAY_S)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    # Qdrant writes `<snapshot>.checksum` beside each snapshot; the list reads it back
    atomic_write(
        path.with_name(path.name + ".checksum"), hashlib.sha256(buf.getvalue()).hexdigest().encode()
    )
    atomic_write(path, buf.getvalue())
    return describe(path)


def make_snapshot(req: Request, path: Path, members: dict[str, bytes]) -> Any:
    """Write the snapshot now (wait=true, the default) or behind the answer (wait=false)."""
    if req.query.get("wait", "true").lower() != "false":
        return write_snapshot(path, members)
    threading.Thread(target=write_snapshot, args=(path, members), daemon=True).start()
    return ACCEPTED


def describe(path: Path) -> Json:
    st = path.stat()
    sums = path.with_name(path.name + ".checksum")
    checksum = sums.read_text().strip() if sums.exists() else sha256_file(path)
    created = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).replace(tzinfo=None)
    return {
        "name": path.name,
        "creation_time": created.isoformat(timespec="seconds"),
        "size": st.st_size,
        "checksum": checksum,
    }


def list_snapshots(folder: Path) -> list[Json]:
    if not folder.is_dir():
        return []
    return [describe(p) for p in sorted(folder.glob("*.snapshot")) if p.is_file()]


def snapshot_path(folder: Path, name: str) -> Path:
    path = folder / check_name(name, "snapshot")
    if not path.is_file():
        raise QError(404, f"Not found: Snapshot {name} not found")
    return path


def read_snapshot(data: bytes, checksum: str | None) -> Json:
    """The collection document inside a collection snapshot, after checking its sha256."""
    if checksum and hashlib.sha256(data).hexdigest() != checksum.lower():
        raise QError(
            400,
            f"Bad request: Snapshot checksum mismatch: expected {checksum}, got "
            f"{hashlib.sha256(data).hexdigest()}",
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile("collection.json")
            assert member is not None
            doc: Json = json.load(member)
    except (tarfile.TarError, KeyError, ValueError, AssertionError) as exc:
        raise QError(400, f"Bad request: not a collection snapshot: {exc}") from exc
    return doc


def fetch_location(location: str) -> bytes:
    url = urllib.parse.urlparse(location)
    if url.scheme == "file":
        try:
            return Path(urllib.parse.unquote(url.path)).read_bytes()
        except OSError as exc:
            raise QError(404, f"Not found: Snapshot file {location} does not exist: {exc}") from exc
    if url.scheme in ("http", "https"):
        headers = {"api-key": API_KEY} if API_KEY else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(location, headers=headers), timeout=120
            ) as resp:
                return bytes(resp.read())
        except OSError as exc:
            raise QError(
                400, f"Bad request: failed to download snapshot {location}: {exc}"
            ) from exc
    raise QError(400, f"Bad request: unsupported snapshot location {location!r}")


def multipart_field(content_type: str, body: bytes, field: str) -> tuple[bytes, str | None]:
    """One field of a multipart/form-data body and its file name, parsed by its boundary
    (stdlib has no parser)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or not m:
        raise QError(400, "Bad request: expected multipart/form-data with a boundary")
    for part in body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if sep and re.search(rb'[; ]name="?' + re.escape(field.encode()) + rb'"?(;|\s|$)', head):
            filename = re.search(rb'filename="([^"]*)"', head)
            name = filename.group(1).decode(errors="replace") if filename else None
            return (data[:-2] if data.endswith(b"\r\n") else data), name
    raise QError(400, f"Bad request: multipart field {field!r} missing")


# --- state -----------------------------------------------------------------------------------


VERSION_FILE = "version.info"  # Qdrant's StorageVersion file in each collection's folder


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def check_storage_version(folder: Path) -> None:
    """Qdrant's Collection::load: a collection stamped by a newer version is refused (its
    message), an older stamp is migrated to this version, irreversibly (upstream's FAQ: "We do
    not support downgrade ... a newer version will automatically migrate your data to the
    newer storage format, which is not reversible"). Refused here as a start that fails: the
    process exits 1, as Qdrant does when a collection cannot be loaded."""
    stamp = folder / VERSION_FILE
    stored = stamp.read_text().strip() if stamp.is_file() else VERSION
    if _version_key(stored) > _version_key(VERSION):
        print(
            f"Collection version {stored} is greater than application version {VERSION} "
            f"(collection {folder.name})",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
    if stored != VERSION or not stamp.is_file():
        if stamp.is_file():
            print(f"Migrating collection {stored} -> {VERSION}", flush=True)
        atomic_write(stamp, VERSION.encode())


class Store:
    """All collections, behind one lock; every change is on disk before it is answered."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.operation_id = 0
        for doc_path in sorted((STORAGE / "collections").glob("*/collection.json")):
            name = doc_path.parent.name
            check_storage_version(doc_path.parent)
            self.collections[name] = Collection.from_doc(name, json.loads(doc_path.read_text()))

    def get(self, name: str) -> Collection:
        col = self.collections.get(name)
        if col is None:
            raise not_found(name)
        return col

    def save(self, col: Collection) -> Json:
        atomic_write(
            STORAGE / "collections" / col.name / "collection.json",
            json.dumps(col.to_doc()).encode(),
        )
        stamp = STORAGE / "collections" / col.name / VERSION_FILE
        if not stamp.is_file():
            atomic_write(stamp, VERSION.encode())
        self.operation_id += 1
        return {"operation_id": self.operation_id, "status": "completed"}

    def replace(self, name: str, doc: Json) -> None:
        """Recover: the collection's content becomes the snapshot's (created when missing)."""
        col = Collection.from_doc(name, doc)
        self.collections[name] = col
        self.save(col)
        # recovered through this version, which migrates what the snapshot held
        atomic_write(STORAGE / "collections" / name / VERSION_FILE, VERSION.encode())


STORE: Store  # created in main(), after the storage folders exist


# --- HTTP ------------------------------------------------------------------------------------

Route = tuple[str, re.Pattern[str], Callable[..., Any]]
ROUTES: list[Route] = []


def route(method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append((method, re.compile("^" + pattern.replace("{}", "([^/]+)") + "$"), fn))
        return fn

    return register


class Accepted:
    """wait=false: Qdrant answers 202 `{"result": null, "status": "accepted"}` at once."""


ACCEPTED = Accepted()


class Raw:
    """A handler's answer that is not Qdrant's JSON envelope (health texts, file downloads)."""

    def __init__(self, body: bytes | Path, ctype: str = "text/plain; charset=utf-8") -> None:
        self.body, self.ctype = body, ctype


class Request:
    def __init__(self, query: dict[str, str], headers: Any, body: bytes) -> None:
        self.query, self.headers, self.raw = query, headers, body

    def json(self) -> Json:
        try:
            doc = json.loads(self.raw or b"{}")
        except ValueError as exc:
            raise QError(400, f"Format error in JSON body: {exc}") from exc
        if not isinstance(doc, dict):
            raise QError(400, "Format error in JSON body: expected an object")
        return doc


@route("GET", "/")
def root(req: Request) -> Raw:
    body = {"title": "qdrant - vector search engine", "version": VERSION, "commit": "standin"}
    return Raw(json.dumps(body).encode(), "application/json")


@route("GET", "/(healthz|livez|readyz)")
def healthz(req: Request, which: str) -> Raw:
    return Raw(f"{which} check passed".encode())


@route("GET", "/telemetry")
def telemetry(req: Request) -> Json:
    return {
        "id": str(uuid.UUID(int=PEER_ID)),
        "app": {"name": "qdrant", "version": VERSION},
        "collections": {"number_of_collections": len(STORE.collections)},
    }


@route("GET", "/metrics")
def metrics(req: Request) -> Raw:
    return Raw(
        (
            f'app_info{{name="qdrant",version="{VERSION}"}} 1\n'
            f"collections_total {len(STORE.collections)}\n"
        ).encode()
    )


@route("GET", "/cluster")
def cluster(req: Request) -> Json:
    return {"status": "disabled"}


@route("GET", "/aliases")
def aliases(req: Request) -> Json:
    return {"aliases": []}


@route("GET", "/collections")
def collections(req: Request) -> Json:
    return {"collections": [{"name": n} for n in sorted(STORE.collections)]}


@route("GET", "/collections/{}")
def get_collection(req: Request, name: str) -> Json:
    return STORE.get(name).info()


@route("GET", "/collections/{}/exists")
def collection_exists(req: Request, name: str) -> Json:
    return {"exists": name in STORE.collections}


@route("GET", "/collections/{}/cluster")
def collection_cluster(req: Request, name: str) -> Json:
    col = STORE.get(name)
    return {
        "peer_id": PEER_ID,
        "shard_count": 1,
        "remote_shards": [],
        "shard_transfers": [],
        "local_shards": [{"shard_id": 0, "points_count": len(col.points), "state": "Active"}],
    }


@route("PUT", "/collections/{}")
def create_collection(req: Request, name: str) -> bool:
    check_name(name)
    if name in STORE.collections:
        raise QError(409, f"Wrong input: Collection `{name}` already exists!")
    col = Collection(name, make_config(req.json()))
    STORE.collections[name] = col
    STORE.save(col)
    return True


@route("PATCH", "/collections/{}")
def update_collection(req: Request, name: str) -> bool:
    STORE.get(name)  # accepted and ignored: the stand-in has nothing to optimise
    return True


@route("DELETE", "/collections/{}")
def delete_collection(req: Request, name: str) -> bool:
    if STORE.collections.pop(name, None) is None:
        return False  # as Qdrant: deleting a missing collection is not an error
    shutil.rmtree(STORAGE / "collections" / name, ignore_errors=True)
    return True


@route("PUT", "/collections/{}/points")
def upsert(req: Request, name: str) -> Json:
    col, body = STORE.get(name), req.json()
    if "batch" in body:
        batch = body["batch"]
        ids, vectors, payloads = (batch.get("ids", []), batch.get("vectors"), batch.get("payloads"))
        if isinstance(vectors, dict):  # named: {"name": [v1, v2, ...]} -> per point dicts
            vectors = [{k: vs[i] for k, vs in vectors.items()} for i in range(len(ids))]
        points = [
            {
                "id": ids[i],
                "vector": vectors[i] if vectors else None,
                "payload": payloads[i] if payloads else None,
            }
            for i in range(len(ids))
        ]
    elif "points" in body:
        points = body["points"]
    else:
        raise QError(400, "Format error in JSON body: expected `points` or `batch`")
    # validate everything first: a bad point must not leave half a batch applied
    checked = [
        (
            point_key(p.get("id")),
            {
                "id": point_key(p.get("id"))[1],
                "vector": col.check_vector(p.get("vector")),
                "payload": p.get("payload") or {},
            },
        )
        for p in points
    ]
    col.points.update(checked)
    return STORE.save(col)


@route("POST", "/collections/{}/points/delete")
def delete_points(req: Request, name: str) -> Json:
    col, body = STORE.get(name), req.json()
    if "points" in body:
        keys = {point_key(i) for i in body["points"]}
    else:
        keys = {k for k, p in col.points.items() if filter_ok(p, body.get("filter"))}
    for key in keys:
        col.points.pop(key, None)
    return STORE.save(col)


@route("POST", "/collections/{}/points")
def retrieve(req: Request, name: str) -> list[Json]:
    col, body = STORE.get(name), req.json()
    found = [col.points.get(point_key(i)) for i in body.get("ids", [])]
    return [
        record(p, body.get("with_payload", True), body.get("with_vector", False))
        for p in found
        if p is not None
    ]


@route("GET", "/collections/{}/points/{}")
def get_point(req: Request, name: str, point_id: str) -> Json:
    col = STORE.get(name)
    point = col.points.get(point_key(int(point_id) if point_id.isdigit() else point_id))
    if point is None:
        raise QError(404, f"Not found: No point with id {point_id} found")
    return record(point, True, True)


@route("POST", "/collections/{}/points/scroll")
def scroll(req: Request, name: str) -> Json:
    col, body = STORE.get(name), req.json()
    limit = int(body.get("limit") or 10)
    start = point_key(body["offset"]) if body.get("offset") is not None else None
    keys = [k for k in sorted(col.points) if start is None or k >= start]
    page: list[Json] = []
    next_offset = None
    for key in keys:
        if not filter_ok(col.points[key], body.get("filter")):
            continue
        if len(page) == limit:  # Qdrant's offset is inclusive: the next page starts here
            next_offset = key[1]
            break
        page.append(
            record(col.points[key], body.get("with_payload", True), body.get("with_vector", False))
        )
    return {"points": page, "next_page_offset": next_offset}


@route("POST", "/collections/{}/points/count")
def count(req: Request, name: str) -> Json:
    col, body = STORE.get(name), req.json()
    return {"count": sum(1 for p in col.points.values() if filter_ok(p, body.get("filter")))}


def nearest(col: Collection, query: Any, using: str | None, body: Json) -> list[Json]:
    """Brute-force search; Euclid and Manhattan rank the smallest distance first."""
    params = col.vector_params().get(using or "")
    if params is None or not isinstance(query, list):
        raise QError(400, f"Wrong input: the stand-in needs a dense query vector for {using!r}")
    if params["distance"] == "Cosine":
        norm = math.sqrt(sum(x * x for x in query)) or 1.0
        query = [x / norm for x in query]
    hits = []
    for point in col.points.values():
        vec = (
            point["vector"].get(using or "")
            if isinstance(point["vector"], dict)
            else point["vector"]
        )
        if vec is not None and filter_ok(point, body.get("filter")):
            hits.append((score(params["distance"], query, vec), point))
    smaller_better = params["distance"] in ("Euclid", "Manhattan")
    hits.sort(key=lambda h: h[0], reverse=not smaller_better)
    threshold = body.get("score_threshold")
    if threshold is not None:
        hits = [h for h in hits if (h[0] <= threshold if smaller_better else h[0] >= threshold)]
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 10)
    return [
        {
            **record(p, body.get("with_payload", False), body.get("with_vector", False)),
            "version": 0,
            "score": s,
        }
        for s, p in hits[offset : offset + limit]
    ]


@route("POST", "/collections/{}/points/search")
def search(req: Request, name: str) -> list[Json]:
    body = req.json()
    vector = body.get("vector")
    using = vector.get("name") if isinstance(vector, dict) else None
    query = vector.get("vector") if isinstance(vector, dict) else vector
    return nearest(STORE.get(name), query, using, body)


@route("POST", "/collections/{}/points/query")
def query(req: Request, name: str) -> Json:
    body = req.json()
    q = body.get("query")
    q = q.get("nearest") if isinstance(q, dict) else q
    return {"points": nearest(STORE.get(name), q, body.get("using"), body)}


@route("PUT", "/collections/{}/index")
def create_index(req: Request, name: str) -> Json:
    col, body = STORE.get(name), req.json()
    if not isinstance(body.get("field_name"), str):
        raise QError(400, "Format error in JSON body: missing field `field_name`")
    schema = body.get("field_schema") or "keyword"
    kind = schema.get("type", "keyword") if isinstance(schema, dict) else schema
    col.payload_schema[body["field_name"]] = {"data_type": kind, "params": None}
    return STORE.save(col)


@route("DELETE", "/collections/{}/index/{}")
def delete_index(req: Request, name: str, field: str) -> Json:
    col = STORE.get(name)
    col.payload_schema.pop(field, None)
    return STORE.save(col)


@route("GET", "/collections/{}/snapshots")
def list_collection_snapshots(req: Request, name: str) -> list[Json]:
    STORE.get(name)
    return list_snapshots(SNAPSHOTS / name)


@route("POST", "/collections/{}/snapshots")
def create_collection_snapshot(req: Request, name: str) -> Any:
    with STORE.lock:
        doc = json.dumps(STORE.get(name).to_doc()).encode()
        path = snapshot_target(SNAPSHOTS / name, f"{name}-{PEER_ID}")
    return make_snapshot(req, path, {"collection.json": doc})


@route("GET", "/collections/{}/snapshots/{}")
def download_collection_snapshot(req: Request, name: str, snap: str) -> Raw:
    return Raw(snapshot_path(SNAPSHOTS / check_name(name), snap), "application/octet-stream")


@route("DELETE", "/collections/{}/snapshots/{}")
def delete_collection_snapshot(req: Request, name: str, snap: str) -> bool:
    path = snapshot_path(SNAPSHOTS / check_name(name), snap)
    path.unlink()
    path.with_name(path.name + ".checksum").unlink(missing_ok=True)
    return True


@route("PUT", "/collections/{}/snapshots/recover")
def recover(req: Request, name: str) -> bool:
    check_name(name)
    body = req.json()
    if "location" not in body:
        raise QError(400, "Format error in JSON body: missing field `location`")
    # fetched before the lock is taken: the URL may well point back at this server
    data = fetch_location(body["location"])
    with STORE.lock:
        STORE.replace(name, read_snapshot(data, body.get("checksum")))
    return True


@route("POST", "/collections/{}/snapshots/upload")
def upload(req: Request, name: str) -> bool:
    """As Qdrant: checksum first (the file is dropped on a mismatch), then the file is moved
    into the collection's snapshot folder under its own (base) name, a UUID when it has none,
    replacing one of that name, and the collection recovered from there. The file stays."""
    check_name(name)
    checksum = req.query.get("checksum")
    if checksum is not None and not SHA256_RE.match(checksum):
        raise QError(400, "Validation error in query params: checksum: invalid_sha256_hash")
    data, filename = multipart_field(req.headers.get("Content-Type", ""), req.raw, "snapshot")
    actual = hashlib.sha256(data).hexdigest()
    if checksum is not None and actual != checksum.lower():
        # Qdrant's wording, its two hashes in this order (StorageError::checksum_mismatch)
        raise QError(400, f"Checksum mismatch: expected {actual}, actual {checksum}")
    base = Path(filename or "").name
    kept = (
        SNAPSHOTS
        / name
        / (base if base and NAME_RE.match(base) and base != ".." else str(uuid.uuid4()))
    )
    atomic_write(kept, data)
    with STORE.lock:
        STORE.replace(name, read_snapshot(data, None))
    return True


@route("GET", "/snapshots")
def list_full(req: Request) -> list[Json]:
    return list_snapshots(SNAPSHOTS)


@route("POST", "/snapshots")
def create_full(req: Request) -> Any:
    with STORE.lock:
        members = {
            f"collections/{n}/collection.json": json.dumps(c.to_doc()).encode()
            for n, c in STORE.collections.items()
        }
        path = snapshot_target(SNAPSHOTS, "full-snapshot")
    return make_snapshot(req, path, members)


@route("GET", "/snapshots/{}")
def download_full(req: Request, snap: str) -> Raw:
    return Raw(snapshot_path(SNAPSHOTS, snap), "application/octet-stream")


@route("DELETE", "/snapshots/{}")
def delete_full(req: Request, snap: str) -> bool:
    path = snapshot_path(SNAPSHOTS, snap)
    path.unlink()
    path.with_name(path.name + ".checksum").unlink(missing_ok=True)
    return True


# routes that need no API key, as in Qdrant (src/actix/mod.rs: exact "/" and "/healthz",
# prefixes "/readyz" and "/livez")
OPEN_PATHS = ("/", "/healthz")
OPEN_PREFIXES = ("/readyz", "/livez")
# what a read-only key may POST besides any GET: the reads of points (src/actix/auth.rs)
READ_ONLY_POST = re.compile(
    r"^/collections/[^/]+/points(/count|/scroll|/query(/batch|/groups)?"
    r"|/(search|recommend|discover)(/batch|/groups)?)?$"
)
# paths Qdrant's request logger skips (src/actix/mod.rs: Logger::default().exclude(...))
UNLOGGED = ("/", "/metrics", "/telemetry", "/healthz", "/readyz", "/livez")
# what tracing-subscriber (>= 0.3.20, fmt/format/escape.rs) escapes in a message: ESC BEL BS FF
# DEL as \xHH, C1 controls as \u{hh}; the rest (tabs, quotes, U+2028) is written as it is
_TRACING_ESCAPES = {0x1B: "\\x1b", 0x07: "\\x07", 0x08: "\\x08", 0x0C: "\\x0c", 0x7F: "\\x7f"}
_TRACING_ESCAPES.update({c: f"\\u{{{c:x}}}" for c in range(0x80, 0xA0)})


def _lossy(text: str) -> str:
    """A header as actix reads it: http.server decodes bytes as latin-1, actix as
    from_utf8_lossy. CR and LF (only a folded header has them here; actix's parser refuses
    those) become spaces, so a record stays one line."""
    raw = text.encode("latin-1", errors="replace").decode("utf-8", errors="replace")
    return raw.replace("\r", " ").replace("\n", " ")


def tracing_line(level: str, target: str, message: str, now: dt.datetime | None = None) -> str:
    """One line as Qdrant's logger writes it: tracing-subscriber's Full format without colour,
    `{time} {level:>5} {target}: {message}` with the time in UTC to the microsecond."""
    when = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{when} {level:>5} {target}: {message.translate(_TRACING_ESCAPES)}\n"


def access_line(
    peer: str, request_line: str, status: int, size: int, referer: str, agent: str,
    seconds: float, now: dt.datetime | None = None,
) -> str:  # fmt: skip
    """A request as Qdrant logs it: actix-web's default Logger format
    `%a "%r" %s %b "%{Referer}i" "%{User-Agent}i" %T` (actix-web/src/middleware/logger.rs),
    header values unescaped, at INFO with target actix_web::middleware::logger."""
    message = (
        f'{peer} "{_lossy(request_line)}" {status} {size} "{_lossy(referer)}" '
        f'"{_lossy(agent)}" {seconds:.6f}'
    )
    return tracing_line("INFO", "actix_web::middleware::logger", message, now)


# handlers that must not hold the store lock for their whole run (they take it themselves):
# making a snapshot may take QDRANT_STANDIN_SNAPSHOT_DELAY_S, and the list must answer meanwhile
SELF_LOCKING = (recover, upload, create_collection_snapshot, create_full)


class Handler(BaseHTTPRequestHandler):
    # keep-alive like actix-web; every reply therefore carries a Content-Length
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-standin"

    started = 0.0

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # requests are logged by send(), as actix logs them: once the body is out

    def log_message(self, format: str, *args: Any) -> None:
        # what http.server says besides requests (a malformed request line, say): a WARN line
        text = _lossy(format % args).encode("unicode_escape").decode("ascii")
        sys.stdout.write(tracing_line("WARN", "qdrant_standin", text))

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, code: int, body: bytes | Path, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        size = body.stat().st_size if isinstance(body, Path) else len(body)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if isinstance(body, Path):
            with body.open("rb") as fh:  # streamed: snapshots may be large
                shutil.copyfileobj(fh, self.wfile, 1 << 20)
        else:
            self.wfile.write(body)
        if urllib.parse.urlsplit(self.path).path not in UNLOGGED:
            sys.stdout.write(
                access_line(
                    self.client_address[0], f"{self.command} {self.path} {self.request_version}",
                    code, size, self.headers.get("Referer", "-"),
                    self.headers.get("User-Agent", "-"), time.monotonic() - self.started,
                )
            )  # fmt: skip

    def dispatch(self, method: str) -> None:
        started = self.started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        # read first, so an early error still leaves a clean keep-alive connection
        req = Request(dict(urllib.parse.parse_qsl(url.query)), self.headers, self.read_body())
        refusal = self.refusal(method, url.path)
        if refusal is not None:
            code, message = refusal
            if code == 401:  # the middleware's plain body
                self.send(code, message.encode(), "text/plain; charset=utf-8")
            else:  # a handler's access check: Qdrant's JSON error
                body = {"status": {"error": message}, "time": time.monotonic() - started}
                self.send(code, json.dumps(body).encode(), "application/json")
            return
        try:
            for verb, pattern, fn in ROUTES:
                m = pattern.match(url.path)
                if verb == method and m:
                    args = [urllib.parse.unquote(g) for g in m.groups()]
                    if fn in SELF_LOCKING:
                        result = fn(req, *args)
                    else:
                        with STORE.lock:
                            result = fn(req, *args)
                    break
            else:
                raise QError(404, f"Not found: {method} {url.path}")
        except QError as err:
            body = {"status": {"error": err.message}, "time": time.monotonic() - started}
            self.send(err.code, json.dumps(body).encode(), "application/json")
            return
        except Exception as exc:  # answer like Qdrant's 500 instead of dropping the connection
            body = {
                "status": {"error": f"Service internal error: {exc!r}"},
                "time": time.monotonic() - started,
            }
            self.send(500, json.dumps(body).encode(), "application/json")
            return
        if isinstance(result, Raw):
            self.send(200, result.body, result.ctype)
        elif isinstance(result, Accepted):
            body = {"result": None, "status": "accepted", "time": time.monotonic() - started}
            self.send(202, json.dumps(body).encode(), "application/json")
        else:
            body = {"result": result, "status": "ok", "time": time.monotonic() - started}
            self.send(200, json.dumps(body).encode(), "application/json")

    def refusal(self, method: str, path: str) -> tuple[int, str] | None:
        """Qdrant's API key check (src/common/auth): the key from the `api-key` header, else
        an `Authorization: Bearer` token; None when the request may go on."""
        if not (API_KEY or READ_ONLY_API_KEY):
            return None
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        bearer = self.headers.get("Authorization", "")
        key = self.headers.get("api-key") or (
            bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        )
        if not key:
            return 401, "Must provide an API key or an Authorization bearer token"
        if key == API_KEY:
            return None
        if key != READ_ONLY_API_KEY:
            return 401, "Invalid API key or JWT"
        if method == "GET" or (method == "POST" and READ_ONLY_POST.match(path)):
            return None
        return 403, "Forbidden: Write access denied: this is a read-only API key"

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # idle keep-alive connections must not hold up shutdown (server_close joins handler threads)
    block_on_close = False


def main() -> None:
    global STORE, STORAGE, SNAPSHOTS, API_KEY, READ_ONLY_API_KEY
    parser = argparse.ArgumentParser(prog="qdrant", description="Qdrant stand-in (REST only)")
    parser.add_argument("--config-path", help="a config file merged over config/*")
    try:
        settings = load_settings(parser.parse_args().config_path)
    except ConfigError as err:  # as Qdrant's main returns Settings::new's error: exit 1
        sys.stderr.write(f"Error: {err}\n")
        sys.exit(1)
    STORAGE = Path(settings["storage", "storage_path"])
    SNAPSHOTS = Path(settings["storage", "snapshots_path"])
    # a number in a file is a string to Qdrant's String field; upstream treats "" as unset
    API_KEY = str(settings["service", "api_key"] or "") or None
    READ_ONLY_API_KEY = str(settings["service", "read_only_api_key"] or "") or None
    host, port = settings["service", "host"], settings["service", "http_port"]
    (STORAGE / "collections").mkdir(parents=True, exist_ok=True)
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    STORE = Store()
    server = Server((host, port), Handler)
    stop = threading.Event()
    # PID 1 in a container has no default SIGTERM action: without a handler `docker stop`
    # waits 10 s and kills; every change is already on disk, so stopping is just closing
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    print(
        f"Qdrant stand-in {VERSION} (REST only) on http://{host}:{port}, storage {STORAGE}, "
        f"snapshots {SNAPSHOTS}, {len(STORE.collections)} collection(s) loaded",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    print("Shutting down", flush=True)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
