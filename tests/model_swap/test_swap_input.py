"""`sbx model swap` with a --service that passes no --model: one line, exit 2 (#23 finding 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.env_helpers import files_stack
from faults.input_helpers import invoke


@pytest.mark.parametrize("service", ["nosuch", "../worker", ".hidden", ""])
def test_unknown_service_is_refused_in_one_line(tmp_path: Path, service: str) -> None:
    stack = files_stack(tmp_path / "h23swap")
    before = (stack / "env" / "stack.env").read_text()
    done = invoke(["model", "swap", "--service", service, "--model", "m/x", "--stack", str(stack)])
    assert done.exception is None, done.exception  # no traceback
    assert done.exit_code == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"no compose service {service!r} passing --model" in line, line
    assert "those that do: watchdog, worker" in line, line
    assert (stack / "env" / "stack.env").read_text() == before
    assert not list((stack / "env").glob("*.sbx-tmp"))
