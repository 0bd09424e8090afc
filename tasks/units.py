"""Numbers as an operator reads them. No Prefect here: read-only commands import this."""

from __future__ import annotations


def human_bytes(count: float) -> str:
    """``1.5 GiB``: binary units, one decimal (bytes whole)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
