"""The running stack of the freeze/preserve tests and what they share (fixtures: conftest.py).

``worker`` and ``proxy`` of a copy of examples/stack, the proxy published on 0.0.0.0 (it is the
box's exposure), and a canary secret in an env file the worker reads: no bundle may hold it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from bed import RunningStack
from bed.stack import OVERRIDE, prepare_stack

from tasks.incident.record import close_incident, current_incident

CANARY = f"sbx-canary-{uuid.uuid4().hex}"


def prepare_incident_stack(dest: Path, run_id: str) -> RunningStack:
    """The example stack with its proxy on all addresses and a canary secret (not started)."""
    stack = prepare_stack(dest, run_id, proxy_bind="0.0.0.0")
    (stack.path / "env" / "canary.env").write_text(f"CANARY_TOKEN={CANARY}\n")
    override = stack.path / OVERRIDE
    override.write_text(
        override.read_text().replace(
            "  worker:\n", "  worker:\n    env_file: [env/worker.env, env/canary.env]\n", 1
        )
    )
    return stack


def proxy_port(stack: RunningStack) -> int:
    return stack.ports["proxy"]


def accepts_tcp(port: int) -> bool:
    """Whether something accepts a TCP connection on the port (on loopback)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return True
    except OSError:
        return False


def close_current(stack: Path) -> None:
    info = current_incident(stack)
    if info is not None:
        close_incident(stack, info.id)


def incident_cli(
    prefect_api: str, *args: str, stack: RunningStack, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``sbx incident ARGS --stack S`` in a subprocess against the test's Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_api, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "sbx", "incident", *args, "--stack", str(stack.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
