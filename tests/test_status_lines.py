"""`sbx status` rendered at 80 columns without Docker: one line per service (#20)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import sbx.cli.status as status_cli
from sbx.cli.lines import fit
from tasks.clients.http_probe import ProbeResult
from tasks.status import ServiceStatus, StackStatus


def _svc(name: str, image: str, **over: object) -> ServiceStatus:
    fields: dict[str, object] = {
        "name": name, "compose_service": name, "kind": "llm", "required": True,
        "state": "running", "health": "healthy", "container": f"box-{name}-1", "image": image,
        "digest": "sha256:" + "4c" * 32, "ports": ["127.0.0.1:8000->8000/tcp",
                                                 "127.0.0.1:8001->8001/tcp"],
        "url": "http://127.0.0.1:8000",
        "probe": ProbeResult(url="http://127.0.0.1:8000/health", ok=True, status_code=200,
                             elapsed_ms=12.3),
        "problem": None,
    }  # fmt: skip
    return ServiceStatus.model_validate({**fields, **over})


def test_one_line_per_service_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    report = StackStatus(
        stack_dir=Path("/home/operator/sealed-box-ai/stack"),
        project="sealed-box-ai-stack-with-a-long-name",
        services=[
            _svc("worker", "registry.example.internal:5000/sealed-box/vllm-openai:v0.11.0"),
            _svc("open-webui", "ghcr.io/open-webui/open-webui:main-2026-11-30-cuda"),
            _svc("internet-research", "agent:1", required=False, state="exited", health=None,
                 probe=None, ports=[], problem="container is exited"),
        ],
    )  # fmt: skip
    buffer = io.StringIO()
    monkeypatch.setattr(status_cli, "out", Console(file=buffer, width=80, highlight=False))
    monkeypatch.setattr(status_cli, "err", Console(file=io.StringIO(), width=80))
    status_cli._print_status(report)
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), buffer.getvalue()
    worker = next(line for line in lines if line.startswith("worker "))
    assert "healthy" in worker and "@4c4c4c4" in worker and ":8000 +1" in worker
    assert "200, 12 ms" in worker
    agent = next(line for line in lines if line.startswith("internet-research?"))
    assert "exited" in agent


def test_fit_gives_the_flexible_column_what_is_left() -> None:
    lines = fit(("a", "b"), [("x" * 10, "y" * 200)], 40, flex=1, caps={})
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("x" * 10) and lines[1].endswith("y") and "…" in lines[1]
