"""The stack's tamper-evident change log: ``<stack>/.sbx/changelog.jsonl``.

One JSON object a line, appended only. Each entry carries the hash of the entry before it
(``prev_hash``; the first one the all-zero genesis hash) and its own ``hash``: SHA-256 of the
entry's canonical JSON (sorted keys, no spaces, UTF-8) without the ``hash`` field. Editing a byte
breaks that entry's own hash; removing or reordering entries breaks the next one's ``prev_hash``
and the ``seq`` sequence; a line cut short does not parse. Removing the *tail* leaves a valid
shorter chain: that is only caught against a copy of the head kept elsewhere (see ``docs/
changelog.md``: the head is written to ``changelog.head`` and, inside a flow run, to a Prefect
Variable).

Appenders (any flow: restores, model swaps, upgrades, rollbacks) serialise on an ``flock`` of
``changelog.lock`` so two of them never chain onto the same entry; each line is written with one
``write`` and ``fsync``-ed before the lock is released.

The API other modules use: :func:`append_change`, :func:`read_changes`, :func:`verify_changes`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sbx.durable import append_durably, hold_room, is_no_space, write_atomic
from sbx.errors import NoSpace

LOG_FILE = Path(".sbx") / "changelog.jsonl"
LOCK_FILE = Path(".sbx") / "changelog.lock"
HEAD_FILE = Path(".sbx") / "changelog.head"
ROOM_FILE = Path(".sbx") / "changelog.room"
ROOM_BYTES = 256 * 1024  # an entry, the head and a step's own records are far less
GENESIS = "0" * 64
SCHEMA_VERSION = 1

#: JSON values an entry's ``before`` / ``after`` may hold (kept as given, hashed canonically)
JsonValue = Any


class ChangeEntry(BaseModel):
    """One change sbx made to the stack: what, to which target, from what to what, when, by whom."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    seq: int
    time: str  # ISO 8601, UTC, seconds: text so the hash does not depend on datetime rendering
    action: str  # e.g. "model-swap", "model-swap-rollback", "restore", "upgrade", "rollback"
    target: str  # e.g. the service name, or "stack"
    before: JsonValue = None
    after: JsonValue = None
    flow_run_id: str | None = None
    prev_hash: str
    hash: str


class ChangeLogReport(BaseModel):
    """What ``verify_changes`` found: intact, or the first bad entry and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    path: Path
    entries: int  # lines read (good and bad)
    intact: bool
    head_hash: str  # hash of the last good entry (GENESIS when none)
    bad_line: int | None = None  # 1-based line number of the first bad entry
    bad_seq: int | None = None  # its seq when it could be read
    problem: str | None = None
    anchor: str | None = None  # what the head was compared with, when a copy was found

    def describe(self) -> str:
        """One sentence for the operator."""
        if self.intact:
            anchored = f"; head matches {self.anchor}" if self.anchor else ""
            entries = f"{self.entries} entry" if self.entries == 1 else f"{self.entries} entries"
            return f"{self.path}: {entries}, chain intact{anchored}."
        seq = f" (seq {self.bad_seq})" if self.bad_seq is not None else ""
        where = f"line {self.bad_line}{seq}" if self.bad_line is not None else "the end"
        return f"{self.path}: entry at {where} is bad: {self.problem}."


def canonical(data: dict[str, Any]) -> bytes:
    """The bytes an entry is hashed (and written) as: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``data`` without its ``hash`` field."""
    body = {k: v for k, v in data.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def log_path(stack_dir: Path) -> Path:
    return stack_dir / LOG_FILE


@contextlib.contextmanager
def _locked(stack_dir: Path) -> Iterator[None]:
    lock_path = stack_dir / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def current_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:  # no Prefect, or no run context: the entry simply names no run
        return None
    return str(run_id) if run_id else None


def _last_good(path: Path) -> tuple[int, str]:
    """(last seq, last hash) of the entries that parse, for chaining on."""
    if not path.exists():
        return 0, GENESIS
    raw = path.read_bytes()
    seq, head = 0, GENESIS
    for line in raw.splitlines():
        try:
            data = json.loads(line)
            seq, head = int(data["seq"]), str(data["hash"])
        except (ValueError, KeyError, TypeError):
            continue  # verify reports it; a damaged line must not stop a change being recorded
    return seq, head


@contextlib.contextmanager
def room_for_changes(stack_dir: Path) -> Iterator[None]:
    """Hold room for the change log's entries before a change is made (a full ``.sbx`` then
    refuses here, with nothing changed); :func:`append_change` frees it before it writes."""
    room = stack_dir / ROOM_FILE
    try:
        hold_room(room, ROOM_BYTES)
    except OSError as exc:
        if not is_no_space(exc):
            raise
        raise NoSpace(log_path(stack_dir), "nothing was changed") from exc
    try:
        yield
    finally:
        room.unlink(missing_ok=True)


def append_change(
    stack_dir: Path,
    *,
    action: str,
    target: str,
    before: JsonValue = None,
    after: JsonValue = None,
    flow_run_id: str | None = None,
) -> ChangeEntry:
    """Append one entry to the stack's change log and return it.

    ``before``/``after`` are any JSON values (never secrets: record hashes or ids, not env
    values). ``flow_run_id`` defaults to the current Prefect flow run's id, if there is one.
    """
    path = log_path(stack_dir)
    run_id = flow_run_id if flow_run_id is not None else current_flow_run_id()
    with _locked(stack_dir):
        seq, prev = _last_good(path)
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "seq": seq + 1,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "action": action,
            "target": target,
            "before": before,
            "after": after,
            "flow_run_id": run_id,
            "prev_hash": prev,
        }
        # round-trip first so what is hashed is exactly what a reader parses back
        data = json.loads(canonical(data))
        data["hash"] = entry_hash(data)
        (stack_dir / ROOM_FILE).unlink(missing_ok=True)  # the room held for this entry
        try:  # after a line a crash cut short, append_durably starts ours on a line of its own
            append_durably(path, canonical(data) + b"\n")
        except OSError as exc:
            if not is_no_space(exc):
                raise
            left = f"the change log was left as it was, without this {action}"
            raise NoSpace(path, left) from exc
        _write_head(stack_dir, data["seq"], data["hash"])
    entry = ChangeEntry.model_validate(data)
    if current_flow_run_id() is not None:  # only where a Prefect API is known to answer
        _anchor_in_prefect(stack_dir, entry)
    return entry


def _write_head(stack_dir: Path, seq: int, head: str) -> None:
    """A head left stale by a full disk only names an earlier entry: verify accepts that."""
    try:
        write_atomic(stack_dir / HEAD_FILE, f"{seq} {head}\n", fsync=False)
    except OSError as exc:
        if not is_no_space(exc):
            raise


def anchor_variable_name(stack_dir: Path) -> str:
    """Prefect Variable that keeps a copy of the head (names allow [a-z0-9_-] only)."""
    digest = hashlib.sha256(str(stack_dir.resolve()).encode()).hexdigest()[:12]
    return f"sbx-changelog-head-{digest}"


def _anchor_in_prefect(stack_dir: Path, entry: ChangeEntry) -> None:
    """Inside a flow run, keep the head in a Prefect Variable too (best effort: API may be down)."""
    try:
        from prefect.variables import Variable

        Variable.set(anchor_variable_name(stack_dir), f"{entry.seq} {entry.hash}", overwrite=True)
    except Exception:  # the file copy of the head still exists
        return


def keep_live_log(stack_dir: Path, aside: Path, snapshot_id: str) -> None:
    """Put the live log back after an in-place restore swapped in a snapshot's older copy.

    The log is history, not state: restoring data must not take it back in time (nor break
    the head copy). The snapshot's copy stays beside it as ``changelog.jsonl.from-<snapshot>``.
    """
    with _locked(stack_dir):
        keep_live_history(log_path(stack_dir), aside, snapshot_id)


def keep_live_history(live: Path, aside: Path, snapshot_id: str) -> None:
    """Put a history file's live copy (``aside``, where an in-place restore moved it) back at
    ``live``; the snapshot's older copy stays beside it as ``<name>.from-<snapshot>``."""
    if live.exists():
        live.replace(live.with_name(f"{live.name}.from-{snapshot_id}"))
    aside.replace(live)


def read_changes(stack_dir: Path) -> list[ChangeEntry]:
    """Every entry that parses, in file order (``verify_changes`` says whether they chain)."""
    path = log_path(stack_dir)
    if not path.exists():
        return []
    entries = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            entries.append(ChangeEntry.model_validate_json(line))
        except ValidationError:
            continue
    return entries


def _check_line(line: bytes, want_seq: int, want_prev: str) -> tuple[dict[str, Any] | None, str]:
    """(parsed entry, "" when good or the problem)."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        ChangeEntry.model_validate(data)
    except (ValueError, ValidationError):
        return None, "does not parse as an entry (edited or cut short)"
    if entry_hash(data) != data["hash"]:
        return data, "its content does not match its hash (edited)"
    if data["prev_hash"] != want_prev:
        return data, (
            f"it does not chain onto the entry before it (an entry before seq {data['seq']} "
            "was removed, inserted or reordered)"
        )
    if data["seq"] != want_seq:
        return data, f"seq {data['seq']} where {want_seq} was due (removed or reordered)"
    return data, ""


def verify_changes(stack_dir: Path, *, anchor: str | None = None) -> ChangeLogReport:
    """Walk the chain; report the first bad entry, or that it is intact.

    ``anchor`` is a copy of the head ("SEQ HASH") kept outside the file (a Prefect Variable);
    without one, ``.sbx/changelog.head`` is used when present. A head that is not in the chain
    means the tail was removed (or the head copy is stale).
    """
    path = log_path(stack_dir)
    lines = path.read_bytes().splitlines() if path.exists() else []
    seq, head = 0, GENESIS
    chain = {f"{seq} {head}"}
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        data, problem = _check_line(line, seq + 1, head)
        if problem:
            return ChangeLogReport(
                path=path,
                entries=count,
                intact=False,
                head_hash=head,
                bad_line=number,
                bad_seq=data.get("seq") if data else None,
                problem=problem,
            )
        assert data is not None
        seq, head = data["seq"], data["hash"]
        chain.add(f"{seq} {head}")
    source = "the Prefect Variable" if anchor else None
    if anchor is None and (stack_dir / HEAD_FILE).exists():
        anchor, source = (stack_dir / HEAD_FILE).read_text().strip(), str(HEAD_FILE)
    # an anchor that names an earlier entry of the chain is only stale (a crash between writing
    # the line and the head); one the chain does not hold means its end was cut off
    if anchor and anchor not in chain:
        return ChangeLogReport(
            path=path,
            entries=count,
            intact=False,
            head_hash=head,
            bad_line=None,
            problem=(
                f"the log ends at seq {seq} but {source} records head {anchor.split()[0]} "
                "(entries were removed from the end)"
            ),
            anchor=source,
        )
    return ChangeLogReport(path=path, entries=count, intact=True, head_hash=head, anchor=source)


def short_value(value: object, limit: int = 60) -> str:
    """``before``/``after`` in one table cell: a model's served name, else the value, cut."""
    if isinstance(value, dict):
        value = value.get("served_model_name") or value.get("model") or value
    text = str(value) if value is not None else "-"
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
