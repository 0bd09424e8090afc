"""The data checks of a restore drill: the restored data holds what the snapshot recorded.

- Open WebUI's databases: ``PRAGMA integrity_check`` and each table's row count equal to what
  the backup's online copy counted (part detail ``databases``) — on the restored file, before
  the service starts and writes to it.
- Models: every file listed in a model directory's ``SHA256SUMS`` hashes to its line.
- Qdrant captured through its snapshot API: each collection recovered into the scratch Qdrant
  from its snapshot file, then its point count equal to the one recorded at capture (part detail
  ``collections``). A cold copy records no counts: reported as information.

Each returns health-style :class:`CheckResult`s (family ``data``), so the drill report shows
health and data checks in one table.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from sbx.hashing import sha256_file
from sbx.repository import PartRecord
from tasks.backup.methods import QDRANT_SNAPSHOT_DIR, SUMS, read_sums
from tasks.health.checks import Outcome, failing, info, ok
from tasks.health.model import CheckResult, ServiceTarget


def _result(target: str, outcome: Outcome, started: float) -> CheckResult:
    return check_result(f"data:{target}", "data", target, outcome, started)


def check_result(
    check_id: str, family: str, target: str, outcome: Outcome, started: float
) -> CheckResult:
    """A drill check's result, timed from ``started`` (``time.perf_counter()``)."""
    return CheckResult(
        id=check_id,
        family=family,
        target=target,
        state=outcome.state,
        observed=outcome.observed,
        next_step=outcome.next_step,
        duration_ms=(time.perf_counter() - started) * 1000,
        measures=outcome.measures,
    )


@task(name="check-restored-databases", cache_policy=NO_CACHE)
def check_databases(stack_dir: Path, part: PartRecord) -> list[CheckResult]:
    """integrity_check and row counts of each database the part's online backup recorded."""
    recorded = part.detail.get("databases") or {}
    results = []
    for rel, expected in sorted(recorded.items()):
        started = time.perf_counter()
        outcome = _database(stack_dir / rel, rel, dict(expected.get("tables") or {}))
        results.append(_result(f"{part.name}:{rel}", outcome, started))
    return results


def _database(path: Path, rel: str, expected: dict[str, int]) -> Outcome:
    if not path.is_file():
        return failing(f"{rel} is missing from the restored tree", "Run 'sbx verify' on it.")
    try:
        # immutable: read the file as it is, creating no -wal/-shm beside it
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
            counts = {t: _count(conn, t) for t in expected}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return failing(f"{rel} cannot be read as SQLite: {exc}", "Run 'sbx verify' on it.")
    if integrity != "ok":
        return failing(f"{rel}: integrity_check says {integrity[:200]}", "Run 'sbx verify'.")
    wrong = {t: (counts[t], n) for t, n in expected.items() if counts[t] != n}
    if wrong:
        shown = ", ".join(f"{t}: {got} rows, recorded {want}" for t, (got, want) in wrong.items())
        return failing(f"{rel}: {shown}", "Compare the snapshot with 'sbx restore --to DIR'.")
    rows = sum(n or 0 for n in counts.values())
    return ok(f"{rel}: integrity ok; {len(counts)} tables, {rows} rows as recorded", rows=rows)


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    quoted = table.replace('"', '""')
    try:
        return int(conn.execute(f'SELECT count(*) FROM "{quoted}"').fetchone()[0])  # noqa: S608
    except sqlite3.Error:
        return None  # a table the backup saw is gone: reported as a wrong count


@task(name="check-model-checksums", cache_policy=NO_CACHE)
def check_model_sums(
    stack_dir: Path, part: PartRecord, checked_under: tuple[str, ...] = ()
) -> list[CheckResult]:
    """Each restored model directory's files against its SHA256SUMS; those under
    ``checked_under`` are left out (the GPU services' file checks hash them already)."""
    sums_files = sorted(
        e.path
        for e in part.entries
        if e.type == "file"
        and e.path.endswith(f"/{SUMS}")
        and not any(e.path.startswith(f"{prefix}/") for prefix in checked_under)
    )
    results = []
    for rel in sums_files:
        started = time.perf_counter()
        model_dir = rel.rsplit("/", 1)[0]
        results.append(_result(f"{part.name}:{model_dir}", _sums(stack_dir, rel), started))
    return results


def _sums(stack_dir: Path, rel: str) -> Outcome:
    sums = stack_dir / rel
    base = sums.parent
    bad, checked = [], 0
    for name, digest in read_sums(sums):  # names with \\ or a newline are escaped
        file = base / name
        if not file.is_file():
            bad.append(f"{name} missing")
            continue
        checked += 1
        if sha256_file(file) != digest:
            bad.append(f"{name} differs")
    if bad:
        return failing(f"{rel}: {', '.join(bad)}", "Restore the model from its source.")
    return ok(f"{rel}: {checked} files match", files=checked)


@task(name="recover-and-count-qdrant", cache_policy=NO_CACHE)
def recover_qdrant(
    target: ServiceTarget | None, stack_dir: Path, part: PartRecord
) -> list[CheckResult]:
    """Recover each collection from its snapshot file, then compare its point count."""
    started = time.perf_counter()
    url = target.url if target else None
    if part.detail.get("mode") != "snapshot-api":
        mode = part.detail.get("mode", "unknown")
        note = info(f"captured by {mode}: no point counts recorded, none compared")
        return [_result(f"{part.name}:counts", note, started)]
    recorded: dict[str, int] = part.detail.get("collections") or {}
    if url is None:
        down = failing("the scratch Qdrant publishes no port", "Read its log in the drill run.")
        return [_result(f"{part.name}:{name}", down, started) for name in sorted(recorded)]
    from tasks.clients.qdrant import connect  # qdrant-client costs ~1.5 s to import

    entries = {
        e.path.rsplit("/", 1)[1].removesuffix(".snapshot"): e
        for e in part.entries
        if e.type == "file" and f"/{QDRANT_SNAPSHOT_DIR}/" in e.path
    }
    results = []
    with connect(url, api_key=target.credentials.api_key if target else None) as qdrant:
        for name, want in sorted(recorded.items()):
            started = time.perf_counter()
            if name not in entries:
                outcome = failing(f"no snapshot file for collection {name!r}", "Run 'sbx verify'.")
            else:
                entry = entries[name]  # its sha256, where recorded, is checked by Qdrant
                got = qdrant.recover_from_file(name, stack_dir / entry.path, sha256=entry.sha256)
                outcome = (
                    ok(f"collection {name}: {got} points as recorded", points=got)
                    if got == want
                    else failing(
                        f"collection {name}: {got} points, recorded {want}",
                        "Compare the snapshot's collection with the live one.",
                        points=got,
                    )
                )
            results.append(_result(f"{part.name}:{name}", outcome, started))
    return results
