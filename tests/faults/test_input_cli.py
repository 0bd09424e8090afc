"""Malformed sbx.toml, bad SBX_* values and wrong CLI arguments: one clear message, exit 2, no
traceback. In process through typer's CliRunner (milliseconds each: every case stops before
Prefect or Docker is touched), a handful through the real ``sbx`` console script.

The wrong-argument cases are generated from the CLI itself: every command, every option that
takes a value, every typed parameter, every required one — a command added later is covered
without editing this file.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from .figures import FaultFigures
from .input_helpers import CliResult, invoke

USAGE_ERRORS = (
    "No such option",
    "requires an argument",
    "Missing argument",
    "Missing option",
    "Invalid value",
    "No such command",
)


def _commands() -> list[tuple[list[str], Any]]:
    """(path, command) of every leaf command (typer vendors click: read it by duck typing)."""
    from sbx.cli import app

    found: list[tuple[list[str], Any]] = []

    def walk(path: list[str], command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in sorted(command.commands.items()):
                walk([*path, name], sub)
        else:
            found.append((path, command))

    walk([], typer.main.get_command(app))
    return found


def _is_option(param: Any) -> bool:
    return bool(param.param_type_name == "option")


def _bad_value(param: Any) -> str | None:
    """A value the parameter's type refuses, or None when it takes any text."""
    annotation = param.type_descriptor.annotation
    if annotation in (int, float):
        return "not-a-number"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "no-such-choice"
    if getattr(param.type_descriptor.parameter_info, "exists", False):
        return "/nonexistent/sbx-faults"
    return None


def _required(command: Any, skip: Any = None) -> list[str]:
    """Values for the required parameters (but ``skip``), so a case breaks one thing only."""
    values: list[str] = []
    for param in command.params:
        if param is skip or not param.required:
            continue
        values += [param.opts[0], "x"] if _is_option(param) else ["latest"]
    return values


def _argument_cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = [
        ("unknown command", ["no-such-command"]),
        ("unknown subcommand", ["incident", "no-such-step"]),
    ]
    for path, command in _commands():
        name = " ".join(path)
        required = _required(command)
        cases.append((f"{name}: unknown option", [*path, *required, "--no-such-option"]))
        for param in command.params:
            if param.required:
                cases.append((f"{name}: missing {param.name}", [*path, *_required(command, param)]))
            bad = _bad_value(param)
            if _is_option(param) and not param.is_flag:
                opt = param.opts[0]
                cases.append((f"{name}: {opt} without value", [*path, *required, opt]))
                if bad is not None:
                    cases.append((f"{name}: {opt} {bad}", [*path, *required, opt, bad]))
            elif not _is_option(param) and bad is not None:
                cases.append((f"{name}: {param.name} {bad}", [*path, bad]))
    return cases


ARGUMENT_CASES = _argument_cases()


def _assert_clear(done: CliResult, case: str, *expected: str) -> None:
    assert done.exception is None, f"{case}: crashed with {done.exception!r}"
    assert done.exit_code == 2, f"{case}: exit {done.exit_code}\n{done.stderr}{done.stdout}"
    assert "Traceback" not in done.stderr + done.stdout, f"{case}: {done.stderr}"
    text = " ".join(done.stderr.split())  # rich wraps the usage panel
    assert any(phrase in text for phrase in expected), f"{case}: {done.stderr}"


def test_every_wrong_argument_of_every_command_is_one_usage_error(
    fault_figures: FaultFigures, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("SBX_")]:
        monkeypatch.delenv(var)
    assert len(ARGUMENT_CASES) > 100, len(ARGUMENT_CASES)  # the walk found the commands
    failures = []
    for case, argv in ARGUMENT_CASES:
        fault_figures.add(request.node.name, bad_inputs_tried=1)
        done = invoke(argv)
        try:
            _assert_clear(done, case, *USAGE_ERRORS)
        except AssertionError as exc:
            failures.append(f"sbx {' '.join(argv)}\n  {exc}")
            continue
        fault_figures.add(request.node.name, bad_inputs_refused=1)
    assert not failures, f"{len(failures)} of {len(ARGUMENT_CASES)}:\n" + "\n".join(failures)


# sbx.toml content -> text the one message must hold (the key, or the file's problem)
TOML_CASES: dict[str, tuple[bytes, str]] = {
    "bad TOML": (b"[repository\nlocation = 1\n", "is not valid TOML"),
    "duplicate key": (b"probe_timeout_s = 1\nprobe_timeout_s = 2\n", "is not valid TOML"),
    "not UTF-8": (b'[repository]\nlocation = "\xff\xfe"\n', "is not UTF-8"),
    "wrong type": (b'[retention]\nkeep_last = "seven"\n', "retention.keep_last"),
    "port not a number": (b'[services.qdrant]\nport = "x"\n', "services.qdrant.port"),
    "negative count": (b"[retention]\nkeep_daily = -1\n", "retention.keep_daily"),
    "zero RPO": (b"[health]\nrpo_hours = 0\n", "health.rpo_hours"),
    "table as a number": (b"services = 5\n", "services"),
    "unknown key": (b'repositry = "/srv"\n', "no such key"),
    "unknown nested key": (b'[repository]\nlocaton = "/srv"\n', "repository.locaton"),
    "unknown part field": (b"[parts.notes]\npathz = []\n", "parts.notes.pathz"),
    "part path with ..": (b'[parts.notes]\npaths = ["../etc"]\n', "without '..'"),
    "absolute part path": (b'[parts.notes]\npaths = ["/etc"]\n', "without '..'"),
    "log glob with ..": (b'[logs]\nglobs = ["../*.log"]\n', "logs.globs"),
    "off-box URL not s3": (b'[offbox]\nurl = "http://bucket/x"\n', "offbox.url"),
    "service URL not http": (b'[services.worker]\nurl = "ftp://x"\n', "services.worker.url"),
    "health path relative": (
        b'[services.worker]\nhealth_path = "health"\n',
        "services.worker.health_path",
    ),
    "unknown encryption": (
        b'[offbox]\nserver_side_encryption = "rot13"\n',
        "offbox.server_side_encryption",
    ),
    "size not a size": (b'[logs]\nmax_size = "lots"\n', "logs.max_size"),
    "unknown alert event": (
        b'[alerts.ops]\nblock = "sbx-apprise/ops"\non = ["sometimes"]\n',
        "alerts.ops.on",
    ),
    "unknown method": (b'[parts.notes]\nmethod = "rsync"\n', "parts.notes.method"),
}
CONFIG_COMMANDS = [["status"], ["snapshots"], ["backup"], ["health"]]


@pytest.mark.parametrize("case", list(TOML_CASES))
def test_malformed_sbx_toml_is_one_clear_message_and_exit_2(
    case: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in [v for v in os.environ if v.startswith("SBX_")]:
        monkeypatch.delenv(var)
    body, expected = TOML_CASES[case]
    (tmp_path / "sbx.toml").write_bytes(body)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    for command in CONFIG_COMMANDS:
        fault_figures.add(request.node.name, bad_inputs_tried=1)
        done = invoke([*command, "--stack", str(tmp_path)])
        _assert_clear(done, f"{case} ({command[0]})", expected)
        assert done.stderr.count("error:") == 1, done.stderr
        assert "sbx.toml" in done.stderr, done.stderr  # it names the file
        fault_figures.add(request.node.name, bad_inputs_refused=1)


ENV_CASES: dict[str, tuple[dict[str, str], list[str], str]] = {
    "SBX value of the wrong type": (
        {"SBX_RETENTION__KEEP_LAST": "abc"},
        ["status"],
        "retention.keep_last",
    ),
    "SBX table not JSON": ({"SBX_SERVICES": "not json"}, ["status"], "SBX_SERVICES"),
    "SBX nested table not JSON": (
        {"SBX_REPOSITORY": '{"location": 5'},
        ["snapshots"],
        "SBX_REPOSITORY",
    ),
    "--config missing": ({}, ["status", "--config", "/nonexistent/sbx.toml"], "--config"),
    "--repo bucket invalid": ({}, ["snapshots", "--repo", "s3://Not_A_Bucket/x"], "bucket"),
    "--repo prefix with ..": ({}, ["snapshots", "--repo", "s3://bucket/a/../b"], "'..'"),
    "bad age recipient": (
        {"SBX_AGE_RECIPIENTS": "age1notakey", "SBX_OFFBOX__URL": "s3://bucket/x"},
        ["copy"],
        "SBX_AGE_RECIPIENTS",
    ),
}


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_bad_environment_and_locations_are_one_clear_message_and_exit_2(
    case: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in [v for v in os.environ if v.startswith("SBX_")]:
        monkeypatch.delenv(var)
    env, argv, expected = ENV_CASES[case]
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    fault_figures.add(request.node.name, bad_inputs_tried=1)
    done = invoke([*argv, "--stack", str(tmp_path)], env=env)
    _assert_clear(done, case, expected)
    assert done.stderr.count("error:") == 1, done.stderr
    fault_figures.add(request.node.name, bad_inputs_refused=1)


# through the real console script: what an operator sees, stderr only, exit 2
SUBPROCESS_CASES: dict[str, tuple[list[str], dict[str, str], bytes | None, str]] = {
    "bad TOML": (["status"], {}, b"[repository\n", "is not valid TOML"),
    "not UTF-8": (["backup"], {}, b'x = "\xff"\n', "is not UTF-8"),
    "SBX table not JSON": (["status"], {"SBX_SERVICES": "{"}, None, "SBX_SERVICES"),
    "restore without snapshot": (["restore"], {}, None, "Missing argument"),
    "prune with a bad count": (["prune", "--keep-last", "x"], {}, None, "Invalid value"),
}


def test_the_console_script_prints_one_message_and_exits_2(
    tmp_path: Path, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBX_", "PREFECT_API"))}
    # no Prefect API: a case that got as far as a flow would try to start a server and fail
    env.update(COLUMNS="200", SBX_HOME=str(tmp_path / "home"), PREFECT_API_URL="http://0.0.0.0:9")
    running = {}
    for case, (argv, extra, toml, _) in SUBPROCESS_CASES.items():
        stack = tmp_path / case.replace(" ", "-")
        stack.mkdir()
        (stack / "docker-compose.yml").write_text("services: {}\n")
        if toml is not None:
            (stack / "sbx.toml").write_bytes(toml)
        stack_args = ["--stack", str(stack)] if argv[0] != "restore" else []
        running[case] = subprocess.Popen(
            [sys.executable, "-m", "sbx", *argv, *stack_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, **extra},
        )
    for case, proc in running.items():
        stdout, stderr = proc.communicate(timeout=120)
        fault_figures.add(request.node.name, bad_inputs_tried=1)
        expected = SUBPROCESS_CASES[case][3]
        assert proc.returncode == 2, f"{case}: exit {proc.returncode}\n{stderr}"
        assert "Traceback" not in stderr, f"{case}: {stderr}"
        assert expected in " ".join(stderr.split()), f"{case}: {stderr}"
        assert stdout == "", f"{case}: {stdout}"
        fault_figures.add(request.node.name, bad_inputs_refused=1)


# paths and locations that used to be taken as something else, or crash; each case is argv
# built from the stack directory (which holds docker-compose.yml)
def _not_utf8(stack: Path, name: bytes) -> str:
    """A path with a byte that is not UTF-8, as Python hands it to sbx (surrogate escape)."""
    return os.fsdecode(os.fsencode(stack) + b"/" + name)


PATH_CASES: dict[str, tuple[Any, str]] = {
    "--stack naming a file": (
        lambda s: ["snapshots", "--stack", str(s / "docker-compose.yml")],
        "--stack",
    ),
    "--stack not UTF-8": (lambda s: ["snapshots", "--stack", _not_utf8(s, b"st\xffck")], "--stack"),
    "--to not UTF-8": (
        lambda s: ["restore", "latest", "--stack", str(s), "--to", _not_utf8(s, b"t\xffo")],
        "--to",
    ),
    "--repo not UTF-8": (
        lambda s: ["backup", "--stack", str(s), "--repo", _not_utf8(s, b"r\xffpo")],
        "--repo",
    ),
    "--repo empty": (lambda s: ["backup", "--stack", str(s), "--repo", ""], "--repo"),
    "--repo ftp://": (
        lambda s: ["backup", "--stack", str(s), "--repo", "ftp://host/backups"],
        "--repo",
    ),
    "verify --all with a snapshot": (
        lambda s: ["verify", "--all", "latest", "--stack", str(s)],
        "--all",
    ),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_bad_paths_and_locations_are_one_clear_message_and_exit_2(
    case: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in [v for v in os.environ if v.startswith("SBX_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("SBX_HOME", str(tmp_path / "home"))
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    argv_of, expected = PATH_CASES[case]
    fault_figures.add(request.node.name, bad_inputs_tried=1)
    done = invoke(argv_of(tmp_path))
    _assert_clear(done, case, expected)
    assert done.stderr.count("error:") + done.stderr.count("Error") == 1, done.stderr
    fault_figures.add(request.node.name, bad_inputs_refused=1)
