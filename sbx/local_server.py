"""The local Prefect server that sbx manages when PREFECT_API_URL is not set.

Prefect's temporary per-process server costs 15–37 s a command on this kind of machine and fails
when several start at once (measured on a 2-core VM), so sbx keeps one long-lived server instead:
loopback only, its SQLite database and PREFECT_HOME under sbx's home, analytics off. It is started
in the background on first use, found again through a state file, and stopped with
``sbx server stop``. A file lock serialises concurrent starts.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from blocks.home import sbx_home
from sbx.cli_runs import configure_cli_runs
from sbx.errors import PrefectServerError
from sbx.processes import pid_alive
from tasks.clients.http_probe import HttpProbe

DEFAULT_PORT = 4200
#: the directory holding this sbx package: tells two clones (or a clone and an install) apart
INSTALLATION = str(Path(__file__).resolve().parents[1])
START_TIMEOUT_S = 90.0  # 6–13 s measured on 2 cores; a cold DB migration on a busy box takes longer


class ServerState(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    port: int
    url: str  # UI address; the API is url + "/api"
    started_at: float
    log_file: str
    database: str
    # which sbx started it (empty in state files written before these were kept)
    home: str = ""
    installation: str = ""  # the directory holding the sbx package that started it
    sbx_version: str = ""
    prefect_version: str = ""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


class LocalServer:
    """Start, find and stop the sbx-managed Prefect server."""

    def __init__(self, home: Path | None = None, port: int | None = None) -> None:
        self.home = home or sbx_home()
        self.port = port or int(os.environ.get("SBX_SERVER_PORT", DEFAULT_PORT))
        self.prefect_home = self.home / "prefect"
        self.state_file = self.home / "server.json"
        self.log_file = self.home / "server.log"

    def status(self) -> ServerState | None:
        """The running server's state, or None (a stale state file is removed)."""
        state = self._read_state()
        if state is None:
            return None
        if pid_alive(state.pid) and self._answers(state.url):
            return state
        if not pid_alive(state.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return state if self._wait_ready(state.url, state.pid, 10) else None

    def start(
        self, waiting: Callable[[str], AbstractContextManager[object]] | None = None
    ) -> tuple[ServerState, bool]:
        """Start the server unless it runs; returns its state and whether this call started it.

        ``waiting(url)`` is entered while a new server is awaited (a spinner on a terminal).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self.status()
            if running is not None:
                return running, False
            url = f"http://127.0.0.1:{self.port}"
            if self._answers(url):
                raise PrefectServerError(
                    f"Port {self.port} on 127.0.0.1 already serves a Prefect API that sbx did not "
                    f"start. Use it with PREFECT_API_URL={url}/api, or set SBX_SERVER_PORT to a "
                    "free port for sbx's own server."
                )
            pid = self._spawn()
            patience = float(os.environ.get("SBX_SERVER_START_TIMEOUT", START_TIMEOUT_S))
            with waiting(url) if waiting else nullcontext():
                ready = self._wait_ready(url, pid, patience)
            if not ready:
                _terminate(pid)
                raise PrefectServerError(
                    f"The local Prefect server did not answer at {url} within "
                    f"{patience:.0f} s. Its log is {self.log_file}: "
                    f"{_tail(self.log_file)} — if the port is taken, set SBX_SERVER_PORT; on a "
                    "busy box, give it longer with SBX_SERVER_START_TIMEOUT (seconds)."
                )
            state = ServerState(
                pid=pid,
                port=self.port,
                url=url,
                started_at=time.time(),
                log_file=str(self.log_file),
                database=str(self.prefect_home / "prefect.db"),
                home=str(self.home),
                installation=INSTALLATION,
                sbx_version=_version("sbx"),
                prefect_version=_version("prefect"),
            )
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
            tmp.replace(self.state_file)
            return state, True

    def stop(self, force: bool = False) -> ServerState | None:
        """Stop the server if it runs; returns the state it had. A server another sbx
        installation started (another clone sharing this home) is refused without ``force``."""
        with self._lock():
            state = self._read_state()
            if state is None:
                return None
            if state.installation and state.installation != INSTALLATION and not force:
                raise PrefectServerError(
                    f"The local Prefect server at {state.url} (home {self.home}) was started by "
                    f"the sbx in {state.installation}, not this one ({INSTALLATION}): its runs "
                    "may be going. Stop it from there, or pass --force; give each installation "
                    "its own SBX_HOME and SBX_SERVER_PORT to keep their servers apart."
                )
            if pid_alive(state.pid):
                _terminate(state.pid)
            self.state_file.unlink(missing_ok=True)
            return state

    def server_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PREFECT_") or key == "PREFECT_LOGGING_LEVEL"
        }
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            # the run history is the audit trail: the server vacuums old events only (Prefect's
            # default); its flow_runs vacuum would delete every run older than 90 days, backups
            # and restores too. The ~288 health runs a day go by the history-daily deployment
            # ([history] health_days, flows/history.py)
            PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED="events",
        )
        return env

    def _spawn(self) -> int:
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--analytics-off",
        ]
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.server_env(),
                cwd=self.home,
                start_new_session=True,  # survives the sbx command; its own group to stop
            )
        return process.pid

    def _wait_ready(self, url: str, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return False
            if self._answers(url):
                return True
            time.sleep(0.5)
        return False

    @staticmethod
    def _answers(url: str) -> bool:
        with HttpProbe(timeout_s=2.0) as probe:
            return probe.get(f"{url}/api/health").ok

    def _read_state(self) -> ServerState | None:
        try:
            return ServerState.model_validate_json(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "server.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _terminate(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it does not stop in time."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def ensure_api(announce: bool = True) -> str:
    """The Prefect API URL for this process: PREFECT_API_URL if set, else the local server's.

    Sets PREFECT_API_URL in the environment so Prefect, imported after this call, uses it, and
    sends sbx's own loggers (lock take-overs, aborted snapshots) to the run's log in the UI.
    Then configures this process's flow runs (``sbx.cli_runs``).
    """
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "sbx")
    # a sealed box keeps to itself: Prefect's client sends usage events to a third party from
    # an interactive terminal unless DO_NOT_TRACK says no (prefect/_internal/analytics); the
    # server's own analytics are off in server_env. An operator's own value wins
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not os.environ.get("PREFECT_API_URL"):
        state, started = LocalServer().start(waiting_for_server if announce else None)
        if announce and started:
            print(f"Started the local Prefect server; UI at {state.url}", file=sys.stderr)
        os.environ["PREFECT_API_URL"] = state.api_url
        _ask_less_of(state)
    configure_cli_runs()
    return os.environ["PREFECT_API_URL"]


def _ask_less_of(state: ServerState) -> None:
    """Prefect's clients ask a server for a CSRF token and for its version, each client of each
    command: four round trips a command, and the version check loads a CA bundle. A server this
    sbx started runs without CSRF protection (``server_env`` passes on no such setting) and the
    Prefect its state file records: when that is this installation's Prefect, neither question
    has a new answer. A setting the operator made wins (``setdefault``)."""
    if state.installation != INSTALLATION:
        return  # started by another clone: its settings and Prefect may differ
    os.environ.setdefault("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
    if state.prefect_version and state.prefect_version == _version("prefect"):
        os.environ.setdefault("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED", "false")


def server_summary(state: ServerState) -> dict[str, str]:
    return {
        "ui": state.url,
        "api": state.api_url,
        "pid": str(state.pid),
        "home": state.home or "(not recorded)",
        "started by": state.installation or "(not recorded)",
        "this sbx": INSTALLATION,
        "versions": f"sbx {state.sbx_version or '?'}, prefect {state.prefect_version or '?'}",
        "database": state.database,
        "log": state.log_file,
        "up since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at)),
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def waiting_for_server(url: str) -> AbstractContextManager[object]:
    """What the operator sees while a new server starts: a spinner saying what it waits for on
    a terminal, one line elsewhere (a pipe, a journal)."""
    what = f"starting the local Prefect server at {url} (the first start sets up its database)"
    if sys.stderr.isatty():
        from rich.console import Console

        return Console(stderr=True).status(what + "…")
    print(what + "…", file=sys.stderr, flush=True)
    return nullcontext()
