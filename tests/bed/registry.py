"""A local Docker registry: the one answering on 127.0.0.1:5000, else one started for the session.

Debian's docker-registry package ships a config that asks for htpasswd; ours is written to a temp
dir: no auth, filesystem storage there, deletes allowed, loopback only. Docker treats 127.0.0.0/8
registries as insecure (plain HTTP) without any daemon setting.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .services import (
    free_port,
    http_status,
    log_tail,
    require_service,
    stop_process,
    wait_until,
)

SHARED = "127.0.0.1:5000"
BINARY = "/usr/bin/docker-registry"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
"""


def answers(addr: str) -> bool:
    """True when a registry without auth answers at ``addr`` (``/v2/`` gives 200)."""
    return http_status(f"http://{addr}/v2/") == 200


@contextlib.contextmanager
def registry_session(workdir: Path) -> Iterator[str]:
    """Yield "127.0.0.1:PORT" of a registry without auth; stop it after if we started it."""
    if answers(SHARED):
        yield SHARED
        return
    binary = shutil.which("docker-registry") or (BINARY if Path(BINARY).exists() else None)
    if binary is None:
        require_service(
            "registry",
            f"nothing answers at http://{SHARED}/v2/ and docker-registry is not installed "
            "(apt-get install -y docker-registry)",
        )
    addr = f"127.0.0.1:{free_port()}"
    (workdir / "storage").mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(CONFIG.format(root=workdir / "storage", addr=addr))
    log_path = workdir / "registry.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        ok = wait_until(lambda: proc.poll() is not None or answers(addr), timeout=30)
        if not ok or proc.poll() is not None:
            require_service(
                "registry",
                f"{binary} did not answer at http://{addr}/v2/ within 30 s (exit "
                f"{proc.poll()}); its log {log_path}:\n{log_tail(log_path)}",
            )
        yield addr
    finally:
        stop_process(proc)
