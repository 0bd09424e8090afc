"""Tables as plain lines that fit the terminal: one line per row, long values cut in the middle.

Rich tables fold a cell onto many lines when the screen is narrow (an image name became
``sb / x- / st / an …`` at 80 columns); an operator reads one line per thing better, and so do
``grep`` and a systemd journal. The flexible column takes what the others leave.
"""

from __future__ import annotations

from collections.abc import Sequence

GAP = "  "


def shorten(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut in the middle (both ends say the most)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2 + (width - 1) % 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def fit(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    flex: int,
    caps: dict[int, int],
) -> list[str]:
    """``head`` and ``rows`` as lines of at most ``width`` characters (when the fixed columns
    allow): column ``flex`` takes the room the others leave (at least 12 characters), a column
    in ``caps`` is cut to at most that many characters."""
    count = len(head)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(count)]
    for index, cap in caps.items():
        widths[index] = min(widths[index], max(cap, len(head[index])))
    gaps = len(GAP) * (count - 1)
    others = sum(w for i, w in enumerate(widths) if i != flex) + gaps
    widths[flex] = min(widths[flex], max(12, width - others))
    # still too wide: the capped columns give way, the widest first, down to their headers
    while sum(widths) + gaps > width:
        shrinkable = [i for i in caps if widths[i] > len(head[i])]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    return [
        GAP.join(shorten(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *rows]
    ]
