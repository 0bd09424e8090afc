"""The change log as a person reads it: one line per change (time, kind, what, who).

Entries keep whatever JSON their writer gave (images by digest, kept paths, a model's settings):
:func:`what` turns ``before``/``after`` into one short sentence, never a Python ``repr``, and
the CLI cuts it in the middle (sbx/cli/lines.py) so both ends stay.
"""

from __future__ import annotations

import re

from tasks.changelog import ChangeEntry

_DIGEST = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")
_REF = re.compile(r"^(?:[^/@\s]+/)*(?P<name>[^/@\s]+)@sha256:")  # registry/path/name@sha256:…


def short_text(text: str) -> str:
    """A digest to its first 12 hex digits; an image reference to its last path element."""
    match = _REF.match(text)
    if match:
        text = match["name"] + text[text.index("@") :]
    return _DIGEST.sub(r"sha256:\1", text)


def flat(value: object) -> str:
    """A JSON value as words: lists joined by commas, objects as ``key value`` pairs."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return short_text(value.replace("\n", " "))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(flat(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {flat(v)}" for k, v in value.items()) if value else "-"
    return str(value)


def _digest(image: object) -> str:
    """An image reference as its short digest (the service names the image already)."""
    if isinstance(image, str) and "@sha256:" in image:
        return image.rsplit("@sha256:", 1)[1][:12]
    return flat(image)


def _model(value: object) -> str | None:
    if isinstance(value, dict):
        name = value.get("served_model_name") or value.get("model")
        return str(name) if name else None
    return None


def _images(entry: ChangeEntry) -> str | None:
    """``worker 1a2b… → 3c4d…, proxy …`` of an upgrade or rollback, then its outcome."""
    before, after = entry.before, entry.after
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return None
    old, new = before.get("images"), after.get("images")
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return None
    moves = [f"{svc} {_digest(old.get(svc))} → {_digest(img)}" for svc, img in sorted(new.items())]
    outcome = after.get("outcome")
    return "; ".join(moves) + (f" ({outcome})" if outcome else "")


def what(entry: ChangeEntry) -> str:
    """One sentence of what changed: ``old → new`` where both sides say one thing."""
    images = _images(entry)
    if images is not None:
        return images
    old, new = _model(entry.before), _model(entry.after)
    if new is not None:
        return f"{old or '-'} → {new}"
    after = flat(entry.after)
    if isinstance(entry.after, dict) and "snapshot" in entry.after:  # a restore: its id first
        rest = {k: v for k, v in entry.after.items() if k != "snapshot"}
        after = f"snapshot {flat(entry.after['snapshot'])}" + (f", {flat(rest)}" if rest else "")
    before = entry.before
    if before is None:
        return after
    if entry.after is None:
        return f"removed {flat(before)}"
    if isinstance(before, dict) and set(before) == {"kept_as"}:  # an in-place restore
        return f"{after}; old data kept as {flat(before['kept_as'])}"
    return f"{after} (before: {flat(before)})"


def when(entry: ChangeEntry) -> str:
    """``2026-12-06 23:58`` of the entry's ISO time (seconds dropped: one line is short)."""
    return entry.time.replace("T", " ")[:16]


def who(entry: ChangeEntry) -> str:
    """The flow run that made the change (its first 8 characters), else ``cli``."""
    return entry.flow_run_id[:8] if entry.flow_run_id else "cli"
