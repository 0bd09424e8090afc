"""The watchdog's verdict log: high-risk tags repeated within a window.

Format (docs/configuration.md, "Watchdog verdict log"): JSON lines, one verdict per line, e.g.

    {"time": "2026-11-27T00:01:02Z", "verdict": "block", "tags": ["prompt-injection"]}

``time`` is ISO 8601 (a trailing Z or an offset; naive means UTC); ``tags`` a list of strings;
other fields are ignored. Lines that do not parse are counted and reported, never fatal. Only the
last TAIL_BYTES of the file are read: a window of minutes never needs more.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from blocks.config import SbxConfig
from tasks.health.checks import Check, Outcome, failing, info, ok

TAIL_BYTES = 2 << 20


def plan(config: SbxConfig) -> list[Check]:
    return [Check("verdicts", "watchdog", lambda: _observe(config))]


def count_tags(lines: list[str], tags: set[str], since: datetime) -> tuple[Counter[str], int]:
    """High-risk tag counts of verdicts at or after ``since``, and the number of bad lines."""
    counts: Counter[str] = Counter()
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        verdict = _verdict(line)
        if verdict is None:
            bad += 1
            continue
        when, found = verdict
        if when >= since:
            counts.update(tag for tag in set(found) if tag in tags)
    return counts, bad


def _verdict(line: str) -> tuple[datetime, list[str]] | None:
    """A verdict line's time and tags, else None: not a JSON object (or nested too deep to
    decode), no readable time, tags not a list of strings."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("time"), str):
        return None
    try:
        when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    except ValueError:
        return None
    found = entry.get("tags")
    found = [] if found is None else found
    if not (isinstance(found, list) and all(isinstance(t, str) for t in found)):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)), found


def _tail(path: Path) -> list[str]:
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_BYTES))
        data = fh.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > TAIL_BYTES else lines  # the first line may be cut


def _observe(config: SbxConfig) -> Outcome:
    health = config.health
    path = Path(health.verdict_log).expanduser()
    path = path if path.is_absolute() else config.stack_dir / path
    if not path.is_file():
        return info(f"no verdict log at {path}")
    window = timedelta(minutes=health.verdict_window_min)
    try:
        counts, bad = count_tags(_tail(path), set(health.verdict_tags), datetime.now(UTC) - window)
    except OSError as exc:
        return failing(f"cannot read {path}: {exc.strerror}", "Check its permissions.")
    repeated = {t: n for t, n in counts.items() if n >= health.verdict_max_repeats}
    unparsed = f"; {bad} line(s) not understood" if bad else ""
    seen = ", ".join(f"{t} ×{n}" for t, n in counts.most_common()) or "none"
    measures = {"high_risk_verdicts": float(sum(counts.values()))}
    window_text = f"{health.verdict_window_min:g} min"
    if repeated:
        return failing(
            f"high-risk tags repeated in the last {window_text}: {seen}{unparsed}",
            "Someone may be probing the box: read the verdicts in the log, then consider "
            "'sbx incident freeze' (cut exposure) and 'sbx incident preserve'.",
            **measures,
        )
    return ok(f"high-risk tags in the last {window_text}: {seen}{unparsed}", **measures)
