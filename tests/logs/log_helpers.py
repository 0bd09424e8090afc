"""Shared by the log rotation tests: the writer process, and reading every line back."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from tasks.logs.rotate import open_rotated

WRITER = Path(__file__).with_name("writer.py")
LINE = re.compile(rb"(\d{9}) x{10,106} (\d{9})")

StartWriter = Callable[[Path, float, float], subprocess.Popen[str]]


def read_all(live: Path) -> tuple[list[bytes], list[bytes]]:
    """(every line of the rotated files, oldest first, then the live file; the padding lines)."""
    rotated = sorted(p for p in live.parent.iterdir() if p.name.startswith(f"{live.name}-"))
    lines: list[bytes] = []
    padding: list[bytes] = []
    for path in rotated:
        with open_rotated(path) as stream:
            data = stream.read()
        assert data.endswith(b"\n"), f"{path.name} ends inside a line"
        lines += data.splitlines()
    # punch-hole leaves the head a hole of zeros (documented); nothing else may be zero
    live_lines = live.read_bytes().lstrip(b"\0").splitlines()
    if live_lines and not live_lines[0].strip(b" "):
        padding.append(live_lines.pop(0))  # the blanked tail one collapse leaves, at most one
    return lines + live_lines, padding


def check_every_line_once(lines: list[bytes], written: int) -> None:
    """Lines 0..written-1, each once, in order, none torn."""
    numbers = []
    for index, raw in enumerate(lines):
        match = LINE.fullmatch(raw)
        assert match, f"line {index} is torn or foreign: {raw[:60]!r}"
        assert match.group(1) == match.group(2), f"line {index} is two lines spliced: {raw!r}"
        numbers.append(int(match.group(1)))
    missing = sorted(set(range(written)) - set(numbers))
    assert not missing, f"{len(missing)} lines lost, first {missing[:10]}"
    assert numbers == list(range(written)), "lines duplicated or out of order"
