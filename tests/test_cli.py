"""The CLI contract: every command of design.md is listed; unbuilt ones refuse with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sbx.cli import app

CONTRACT = [
    "backup",
    "snapshots",
    "verify",
    "restore",
    "prune",
    "copy",
    "health",
    "gpu",
    "upgrade",
    "rollback",
    "incident",
    "drill",
    "serve",
    "init",
    "server",
    "status",
    "setup",
    "model",
    "changelog",
    "logs",
]
SBX = [sys.executable, "-m", "sbx"]


def test_help_lists_every_command_of_the_contract() -> None:
    done = subprocess.run(
        [*SBX, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    listed = {
        line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1
    }
    assert set(CONTRACT) <= listed, set(CONTRACT) - listed


def test_incident_help_lists_the_playbook_steps() -> None:
    result = CliRunner().invoke(app, ["incident", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for step in ("freeze", "preserve", "blast-radius", "contain", "recover", "report"):
        assert step in result.output


def test_bad_configuration_exits_2_with_one_message(tmp_path: Path) -> None:
    (tmp_path / "sbx.toml").write_text("[services.qdrant]\nport = 0\n", encoding="utf-8")
    done = subprocess.run(
        [*SBX, "status", "--stack", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 2
    assert "services.qdrant.port = 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_stack_directory_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SBX, "status", "--stack", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "--stack" in done.stderr


def test_stack_without_compose_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SBX, "status", "--stack", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "No compose file" in done.stderr


def test_wrong_arguments_exit_2() -> None:
    done = subprocess.run([*SBX, "status", "--no-such-flag"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "No such option" in done.stderr


def test_status_says_when_docker_is_not_reachable() -> None:
    stack = Path(__file__).resolve().parents[1] / "examples" / "stack"
    done = subprocess.run(
        [*SBX, "status", "--stack", str(stack)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert done.returncode == 1
    assert "Docker is not reachable at unix:///nonexistent/docker.sock" in done.stderr
    assert "Traceback" not in done.stderr


def test_error_messages_print_square_brackets_as_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sbx.cli
    from sbx.errors import ConfigError

    def failing() -> None:
        raise ConfigError("sbx.toml [compose] files: c.yml is missing. Fix [compose] files.")

    monkeypatch.setattr(sbx.cli, "app", failing)
    with pytest.raises(SystemExit) as exited:
        sbx.cli.main()
    assert exited.value.code == 2
    assert "sbx.toml [compose] files: c.yml is missing" in " ".join(capsys.readouterr().err.split())


BUILT_PROBE = """
import json, sys
sys.argv = ["sbx", *json.loads(sys.argv[1])]
from sbx.cli import app, main
try:
    main()
except SystemExit:
    pass
built = [c.name or c.callback.__name__ for c in app.registered_commands]
print("BUILT=" + json.dumps(built + [g.name for g in app.registered_groups]), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("args", "built", "shown"),
    [
        (["verify", "--help"], ["verify"], "Re-read and re-hash a snapshot"),
        (["-v", "server", "--help"], ["server"], "status"),
        (["verif"], None, "Did you mean 'verify'?"),  # every command, for the suggestion
        (["--help"], None, "snapshots"),
    ],
)
def test_a_command_line_builds_only_the_command_it_names(
    args: list[str], built: list[str] | None, shown: str
) -> None:
    """Typer builds every command it holds before running one (~0.1 s for all of sbx's)."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", BUILT_PROBE, json.dumps(args)], capture_output=True, text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    line = [x for x in done.stderr.splitlines() if x.startswith("BUILT=")]
    assert line, done.stderr
    names = json.loads(line[-1].removeprefix("BUILT="))
    if built is None:
        assert set(CONTRACT) <= {n.replace("_", "-") for n in names}, names
    else:
        assert names == built
    assert shown in done.stdout + done.stderr
