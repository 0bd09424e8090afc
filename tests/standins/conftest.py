"""Run a stand-in server (examples/stack/images/<name>/server.py) as a local process.

The images only hold python3 and its standard library, so the servers are started with
`python -S`: without the site module no third-party package is importable, and a server that
quietly grew a dependency fails here, not only inside its container.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "examples" / "stack" / "images"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Standin:
    """One running stand-in: its address, its process and the file its output goes to."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, as `docker stop` sends; kill only if it does not end within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def answers(port: int, path: str) -> bool:
    """True once the server answers HTTP at all (a 503 while "loading" counts)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


StartStandin = Callable[..., Standin]


@pytest.fixture
def start_standin(tmp_path: Path) -> Iterator[StartStandin]:
    """Factory: start_standin("qdrant", {"ENV": "value"}, port=None, wait=True, args=(),
    cwd=None).

    Qdrant runs in `cwd`, by default a fresh folder (its config/ files and default ./storage
    resolve there, as in the image's /qdrant), so no stray config/ of the test run is read.
    Every server started through it is stopped at teardown.
    """
    started: list[Standin] = []

    def start(
        name: str,
        env: dict[str, str] | None = None,
        *,
        port: int | None = None,
        wait: bool = True,
        probe: str = "/",
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
    ) -> Standin:
        port = port or free_port()
        # a clean environment: nothing from the test run leaks into the server's configuration
        full_env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port), "HOST": "127.0.0.1"}
        if name == "qdrant":  # Qdrant's own variables (upstream reads no PORT or HOST)
            full_env = {"PATH": full_env["PATH"], "QDRANT__SERVICE__HTTP_PORT": str(port),
                        "QDRANT__SERVICE__HOST": "127.0.0.1"}  # fmt: skip
        if name == "vllm":  # upstream's vLLM takes its address as arguments, not variables
            args = ("--host", "127.0.0.1", "--port", str(port), *args)
        full_env.update(env or {})
        log = tmp_path / f"{name}-{port}-{len(started)}.log"
        if name == "qdrant" and cwd is None:
            cwd = tmp_path / f"{name}-{port}-{len(started)}"
            cwd.mkdir()
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the server
            proc = subprocess.Popen(
                [sys.executable, "-S", "-u", str(IMAGES / name / "server.py"), *args],
                env=full_env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        standin = Standin(name, port, full_env, log, proc)
        started.append(standin)
        deadline = time.monotonic() + 10
        while wait and not answers(port, probe):
            if proc.poll() is not None:
                pytest.fail(f"{name} stand-in exited with {proc.returncode}:\n{standin.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} stand-in did not answer within 10 s:\n{standin.output()}")
            time.sleep(0.05)
        return standin

    yield start
    for standin in started:
        standin.stop()
