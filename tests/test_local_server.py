"""The sbx-managed local Prefect server: started once, reused, reported, stopped (a real server)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sbx.errors import PrefectServerError
from sbx.local_server import INSTALLATION, LocalServer, ServerState, _ask_less_of, ensure_api

SBX = [sys.executable, "-m", "sbx"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sbx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SBX, *args], capture_output=True, text=True, env=env, timeout=180)


def test_started_once_reused_and_stopped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "SBX_HOME": str(tmp_path / "home"),
        "SBX_SERVER_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    try:
        # two starts at once: the lock makes one of them start it and the other find it
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda _: sbx(env, "server", "start"), range(2))
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        outputs = sorted([first.stdout, second.stdout])
        assert outputs[0].startswith("Already running:"), outputs
        assert outputs[1].startswith("Started local Prefect server"), outputs

        again = sbx(env, "server", "start")
        assert again.returncode == 0 and again.stdout.startswith("Already running:")

        status = sbx(env, "server", "status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["running"] is True
        assert info["ui"] == f"http://127.0.0.1:{env['SBX_SERVER_PORT']}"
        assert Path(info["database"]).parent == tmp_path / "home" / "prefect"
        # which installation's server answers, and its home (#20)
        assert info["home"] == str(tmp_path / "home") and info["started by"] == INSTALLATION
        assert info["versions"].startswith("sbx ") and "prefect 3." in info["versions"]
        shown = sbx({**env, "COLUMNS": "80"}, "server", "status").stdout
        assert info["ui"] in shown and f"home        {tmp_path / 'home'}" in shown
        assert all(len(line) <= 80 or str(tmp_path) in line for line in shown.splitlines())
        pid = int(info["pid"])
        os.kill(pid, 0)  # one server process, the one the state file names

        stopped = sbx(env, "server", "stop")
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        after = sbx(env, "server", "status")
        assert after.returncode == 1 and "not running" in after.stderr
        assert sbx(env, "server", "stop").stdout.startswith("The local Prefect server is not")
    finally:
        LocalServer(home=tmp_path / "home", port=int(env["SBX_SERVER_PORT"])).stop()


def test_prefect_api_url_wins_over_the_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://fleet.example:4200/api")
    monkeypatch.setenv("SBX_HOME", str(tmp_path))
    assert ensure_api() == "http://fleet.example:4200/api"
    assert not (tmp_path / "server.json").exists()


def test_prefect_s_client_telemetry_is_off_unless_the_operator_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect._internal.analytics.ci_detection import CI_ENV_VARS
    from prefect._internal.analytics.enabled import is_telemetry_enabled

    monkeypatch.setenv("PREFECT_API_URL", "http://fleet.example:4200/api")
    monkeypatch.setenv("SBX_HOME", str(tmp_path))
    for ci in CI_ENV_VARS:
        monkeypatch.delenv(ci, raising=False)  # Prefect skips telemetry in CI anyway
    monkeypatch.setenv("DO_NOT_TRACK", "")  # recorded, so the value ensure_api sets is undone
    monkeypatch.delenv("DO_NOT_TRACK")
    ensure_api()
    assert not is_telemetry_enabled()
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # the operator's word stands
    ensure_api()
    assert is_telemetry_enabled()


def test_stale_state_file_is_ignored(tmp_path: Path) -> None:
    server = LocalServer(home=tmp_path, port=free_port())
    tmp_path.mkdir(exist_ok=True)
    # a state file left by a SIGKILLed server whose pid is gone
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    server.state_file.write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "port": server.port,
                "url": "http://127.0.0.1:1",
                "started_at": 0,
                "log_file": "x",
                "database": "y",
            }
        )
    )
    assert server.status() is None
    assert not server.state_file.exists()


HEARTBEAT_PROBE = """
from sbx.local_server import ensure_api
ensure_api()
from prefect.settings import get_current_settings
print(get_current_settings().flows.heartbeat_frequency)
"""


@pytest.mark.parametrize(
    ("operator_setting", "expected"), [(None, "None"), ("60", "60")], ids=["default", "operator"]
)
def test_flow_runs_of_a_command_send_no_heartbeats_unless_asked(
    operator_setting: str | None, expected: str
) -> None:
    """A heartbeat thread made every command wait up to 1 s after its flow run ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # given: no local server is started
    if operator_setting:
        env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = operator_setting
    probe = subprocess.run(
        [sys.executable, "-c", HEARTBEAT_PROBE], capture_output=True, text=True, env=env, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().splitlines()[-1] == expected


def test_stop_refuses_a_server_another_installation_started(tmp_path: Path) -> None:
    server = LocalServer(home=tmp_path, port=free_port())
    other = {"pid": os.getpid(), "port": server.port, "url": "http://127.0.0.1:1",
             "started_at": 0, "log_file": "x", "database": "y", "home": str(tmp_path),
             "installation": "/srv/another-clone"}  # fmt: skip
    server.state_file.write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(PrefectServerError, match="started by the sbx in /srv/another-clone"):
        server.stop()
    assert server.state_file.exists()  # nothing stopped, nothing forgotten
    other["pid"] = _dead_pid()
    server.state_file.write_text(json.dumps(other), encoding="utf-8")
    assert server.stop(force=True) is not None and not server.state_file.exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


CSRF = "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"
VERSION_CHECK = "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"


@pytest.mark.parametrize(
    ("installation", "prefect", "csrf", "version_check"),
    [
        (INSTALLATION, "this", "false", "false"),  # nothing to ask: 4 round trips a command less
        (INSTALLATION, "3.0.0", "false", "asked"),  # another Prefect: its version is checked
        ("/srv/another-clone", "this", "asked", "asked"),  # another sbx: its settings may differ
    ],
)
def test_sbx_s_own_server_is_not_asked_what_its_state_file_says(
    monkeypatch: pytest.MonkeyPatch, installation: str, prefect: str, csrf: str, version_check: str
) -> None:
    from importlib.metadata import version

    for variable in (CSRF, VERSION_CHECK):
        monkeypatch.delenv(variable, raising=False)
    prefect_version = version("prefect") if prefect == "this" else prefect
    state = ServerState(
        pid=1, port=1, url="http://127.0.0.1:1", started_at=0, log_file="x", database="y",
        installation=installation, prefect_version=prefect_version,
    )  # fmt: skip
    _ask_less_of(state)
    assert os.environ.get(CSRF, "asked") == csrf
    assert os.environ.get(VERSION_CHECK, "asked") == version_check
    monkeypatch.setenv(CSRF, "true")  # the operator's setting wins
    _ask_less_of(state)
    assert os.environ[CSRF] == "true"
