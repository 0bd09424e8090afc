"""A fleet's shared server: a throw-away PostgreSQL cluster and a Prefect server on it.

The cluster lives in a temporary directory on a free loopback port (TCP on 127.0.0.1 only, its
socket in the same directory), with durability off: it holds one test session's runs. PostgreSQL
refuses to run as root, so as root (CI, this bed) it runs as the ``postgres`` user the Debian
package creates, through ``setpriv`` (which execs: the process the bed stops is postgres itself).
The Prefect server is ``prefect server start`` with ``PREFECT_API_DATABASE_CONNECTION_URL``
pointing at the cluster, as docs/fleet.md sets one up. Both are stopped, and the directory
removed, when the session ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .services import free_port, http_status, log_tail, require_service, stop_process, wait_until

INSTALL_HINT = "install Debian's postgresql (apt-get install -y postgresql); .ci/run does"


def postgres_bindir() -> Path | None:
    """Where initdb and postgres are: pg_config's answer, else the newest /usr/lib/postgresql."""
    found = shutil.which("pg_config")
    if found:
        done = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(done.stdout.strip())
        if done.returncode == 0 and (bindir / "initdb").is_file():
            return bindir
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    return versions[-1].parent if versions else None


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: its directory, port, and the ``prefect`` database's URL."""

    root: Path
    port: int
    bindir: Path

    @property
    def database_url(self) -> str:
        """What ``PREFECT_API_DATABASE_CONNECTION_URL`` takes (Prefect's asyncpg driver)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/prefect"

    def query(self, sql: str) -> list[str]:
        """Rows of ``sql`` in the ``prefect`` database, one string each (psql -At)."""
        done = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "postgres", "-d", "prefect", "-Atc", sql],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.splitlines()


def _as_postgres_user() -> list[str]:
    """The command prefix that drops root to the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        require_service("postgres", f"running as root and no 'postgres' user: {INSTALL_HINT}")
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """initdb into a temporary directory, start postgres on a free port, create ``prefect``."""
    bindir = postgres_bindir()
    if bindir is None:
        require_service("postgres", f"no initdb found: {INSTALL_HINT}")
    prefix = _as_postgres_user()
    # not under pytest's tmp_path: that is root's, mode 0700, and postgres must reach it
    root = Path(tempfile.mkdtemp(prefix="sbx-test-pg-"))
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    log = root / "postgres.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*prefix, str(bindir / "postgres"), "-D", str(root / "data"), "-k", str(root),
                 "-p", str(port), "-h", "127.0.0.1",
                 # a test session's runs: no durability, room for a server and many workers
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        cluster = PostgresCluster(root, port, bindir)
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        if (
            not wait_until(
                lambda: process.poll() is not None or subprocess.run(ready).returncode == 0,
                timeout=120,
            )
            or process.poll() is not None
        ):
            raise RuntimeError(f"postgres did not start on port {port}: {log_tail(log)}")
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "prefect"],
            check=True, timeout=60,
        )  # fmt: skip
        yield cluster
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: ends open sessions
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class FleetServer:
    """A Prefect server backed by PostgreSQL, as a fleet shares one."""

    api_url: str
    ui_url: str
    database: PostgresCluster
    log: Path


@contextmanager
def prefect_on_postgres(cluster: PostgresCluster, home: Path) -> Iterator[FleetServer]:
    """``prefect server start`` on ``cluster`` (its own PREFECT_HOME, a free port); stopped at
    the end. Its first start migrates the empty database: tens of seconds on 2 busy cores."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_DATABASE_CONNECTION_URL": cluster.database_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    log = home / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port), "--analytics-off"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    ui = f"http://127.0.0.1:{port}"
    try:
        if (
            not wait_until(
                lambda: process.poll() is not None or http_status(f"{ui}/api/health") == 200,
                timeout=300,
                interval=0.5,
            )
            or process.poll() is not None
        ):
            raise RuntimeError(f"prefect server on PostgreSQL did not answer: {log_tail(log)}")
        yield FleetServer(f"{ui}/api", ui, cluster, log)
    finally:
        stop_process(process, timeout=30)
