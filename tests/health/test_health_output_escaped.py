"""What a service said reaches the terminal as it said it (issue 18, deliverable 5): observed
strings, ids and next steps are escaped before Rich renders them, so a file or model named
``web[ui].db`` or ``[red]x[/]`` prints verbatim and cannot restyle or hide the report."""

from __future__ import annotations

import pytest
from health_helpers import report, result
from rich.console import Console

from sbx.cli import health as health_cli


def test_observed_strings_print_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=200, color_system=None)
    monkeypatch.setattr(health_cli, "out", console)
    odd = "db web[ui].db is [red]locked[/] and [bold]x"
    health_cli.print_report(report(result("service:open-webui", "failing", observed=odd)))
    text = console.export_text()
    assert odd in text
