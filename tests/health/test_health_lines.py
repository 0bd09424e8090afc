"""`sbx health` at 80 columns: one line per check, paths relative to the stack (#20)."""

from __future__ import annotations

from pathlib import Path

import pytest
from health_helpers import report, result
from rich.console import Console

from sbx.cli import health as health_cli


def test_one_line_per_check_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=80, color_system=None)
    monkeypatch.setattr(health_cli, "out", console)
    stack = Path("/home/operator/sealed-box-ai/stack")
    checks = [
        result("disk:data", observed=f"{stack}/data/qdrant/storage has 812.4 GiB free of "
               "1.8 TiB (44 %), above the 10 % floor"),
        result("service:open-webui", "failing", observed="HTTP 500 on GET /health (12 ms)"),
        result("completion:watchdog-with-a-long-service-name", observed="1 token in 57 ms"),
        result("containers:qdrant", "suppressed", suppressed_by="service:qdrant",
               observed="container is exited"),
    ]  # fmt: skip
    health_cli.print_report(report(*checks, stack=stack))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    (disk,) = [line for line in lines if line.startswith("disk:data ")]
    assert " data/qdrant/" in disk and str(stack) not in disk  # relative to the stack
    assert disk.endswith("floor") or "…" in disk  # cut in the middle, its end kept
    assert any(line.startswith("service:open-webui ") and "failing" in line for line in lines)
    assert "containers:qdrant: suppressed by service:qdrant" in lines
