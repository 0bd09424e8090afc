"""`sbx incident run`: the playbook in order, asking before each step that changes the box."""

from __future__ import annotations

from pathlib import Path

from bed import RunningStack
from typer.testing import CliRunner

from sbx.cli import app
from sbx.cli.incident.run import plan_steps
from sbx.errors import ConfigError
from tasks.incident.record import current_incident, read_actions

from .incident_bed import accepts_tcp, incident_cli, proxy_port


def test_the_playbook_order_and_what_asks() -> None:
    steps = plan_steps("2h", "latest", agents=True, service="worker")
    assert [s.name for s in steps] == [
        "freeze", "preserve", "blast-radius", "contain", "recover", "report"
    ]  # fmt: skip
    asking = {s.name for s in steps if s.asks}
    assert asking == {"freeze", "contain", "recover"}
    assert steps[0].args == ["--agents"] and steps[2].args == ["--since", "2h"]
    assert steps[4].args[-3:] == ["--snapshot", "latest", "--yes"]
    assert not next(s for s in plan_steps("1d", None, None, "worker") if s.name == "recover").asks


def test_without_a_terminal_or_yes_nothing_runs(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    result = CliRunner().invoke(app, ["incident", "run", "--stack", str(tmp_path)])
    assert isinstance(result.exception, ConfigError), result.output  # exit 2 through main()
    assert "no terminal" in str(result.exception)
    assert not (tmp_path / ".sbx" / "incidents").exists()


def test_run_with_yes_walks_every_step_into_one_incident(
    frozen_clean: RunningStack, prefect_server: str
) -> None:
    stack = frozen_clean
    done = incident_cli(prefect_server, "run", "--yes", "--since", "1h", stack=stack, timeout=900)
    # only worker and proxy run in this stack: recover's health round fails, the rest passes
    assert done.returncode == 1, done.stdout + done.stderr
    assert "steps that failed: recover" in done.stderr, done.stderr
    assert not accepts_tcp(proxy_port(stack))  # frozen
    incident = current_incident(stack.path)
    assert incident is not None
    steps = [a.step for a in read_actions(stack.path, incident.id)]
    order = ["freeze", "preserve", "blast-radius", "contain", "recover"]
    assert [s for s in dict.fromkeys(steps) if s in order] == order, steps
    report = stack.path / ".sbx" / "incidents" / incident.id / "report.md"
    assert report.is_file() and "preserve" in report.read_text()
