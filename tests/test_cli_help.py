"""Help as an operator reads it at 80 columns (#20): paragraphs wrap at the terminal, what is
in brackets stays, flags show no type."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "sbx", *args, "--help"], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "args", [(), ("health",), ("logs", "setup"), ("incident", "recover"), ("restore",), ("init",)]
)
def test_help_fits_80_columns_and_keeps_its_words(args: tuple[str, ...]) -> None:
    text = _help(*args)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "<bool>" not in text and "\\[" not in text  # an escape printed as written


def test_docstring_paragraphs_wrap_whole_and_brackets_stay() -> None:
    raw = _help("health")
    # the second paragraph: every line but its last runs to the width (was: "on the" alone,
    # a break kept from the docstring)
    lines = [line.rstrip() for line in raw.splitlines()]
    start = next(i for i, line in enumerate(lines) if "Checks run concurrently" in line)
    body = lines[start : lines.index("", start)]
    assert len(body) >= 2 and all(len(line) >= 60 for line in body[:-1]), raw
    text = " ".join(raw.split())
    assert "Alerts go to the [alerts] targets of sbx.toml" in text
    assert "([logs] in sbx.toml)" in " ".join(_help("logs", "setup").split())
