"""Helpers of the upgrade tests: the releases in the registry, the journal, the CLI's env."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

from bed import RunningStack
from bed.engine import LABEL
from docker import DockerClient

RELEASES = {
    "v1": {},
    "v2-error": {"STANDIN_FAIL_MODE": "error"},
    "v2-crash": {"STANDIN_FAIL_MODE": "crash", "STANDIN_CRASH_AFTER": "2"},
    "v2-slow": {"STANDIN_FAIL_MODE": "slow-start", "STANDIN_START_DELAY": "120"},
    "v3": {},
}
# Open WebUI releases FROM its stand-in: w2-migrate* "migrate" webui.db on start (alembic
# revision 7826ab40b532 -> 3781e22d8b01, a new table and column), *-crash exit 3 s after start
WEBUI_RELEASES = {
    "w1": {},
    "w2-crash": {"STANDIN_FAIL_MODE": "crash", "STANDIN_CRASH_AFTER": "3"},
    "w2-migrate-crash": {
        "STANDIN_MIGRATE": "1",
        "STANDIN_FAIL_MODE": "crash",
        "STANDIN_CRASH_AFTER": "3",
    },
    "w2-migrate": {"STANDIN_MIGRATE": "1"},
}
# Qdrant releases FROM its stand-in: q2 reports (and stamps its storage with) 1.20.1
QDRANT_RELEASES: dict[str, dict[str, str]] = {"q1": {}, "q2": {"QDRANT_STANDIN_VERSION": "1.20.1"}}
EXAMPLE_SERVICES = ("worker", "watchdog", "qdrant", "open-webui")  # sbx's names = compose's
GATE = {
    "SBX_UPGRADE__SOAK_WINDOW_S": "25",
    "SBX_UPGRADE__PASSES": "2",
    "SBX_UPGRADE__INTERVAL_S": "2",
}

Sbx = Callable[..., CompletedProcess[str]]


@dataclass(frozen=True)
class Releases:
    client: DockerClient
    repository: str  # 127.0.0.1:PORT/sbxt-RUN/vllm
    digests: dict[str, str]  # release -> repo@sha256:...

    @property
    def stable(self) -> str:
        return f"{self.repository}:stable"

    def publish(self, release: str) -> None:
        """Point the registry's ``stable`` tag at ``release`` (local tag moves too, then pushed)."""
        self.client.images.get(f"{self.repository}:{release}").tag(self.repository, "stable")
        self.client.images.push(self.repository, tag="stable")

    def pull(self, release: str) -> None:
        self.client.images.pull(self.repository, tag=self.digests[release].split("@")[1])


def build_releases(
    client: DockerClient,
    base: str,
    repository: str,
    run_id: str,
    releases: dict[str, dict[str, str]],
) -> Releases:
    """Each release a one-layer image FROM ``base`` with its environment, pushed by tag."""
    digests = {}
    for name, env in releases.items():
        lines = [f"FROM {base}", f'LABEL {LABEL}="{run_id}" sbx.release="{name}"']
        lines += [f'ENV {key}="{value}"' for key, value in env.items()]
        client.images.build(
            fileobj=io.BytesIO("\n".join(lines).encode()), tag=f"{repository}:{name}", rm=True
        )
        client.images.push(repository, tag=name)
        pulled = client.images.get_registry_data(f"{repository}:{name}")
        digests[name] = f"{repository}@{pulled.id}"
    return Releases(client, repository, digests)


def cli_env(prefect_server: str, stack: RunningStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(stack.compose_env, PREFECT_API_URL=prefect_server, COLUMNS="200", **GATE)
    return env


def bring_up(
    stack: RunningStack, releases: Releases, first: str, up: list[str], repo: Path
) -> None:
    """Only ``up`` of the example stack running, the registry's ``stable`` tag at ``first``:
    sbx.toml names the repository and marks the other example services not required, so
    health and restores judge the stack by those alone."""
    others = [s for s in EXAMPLE_SERVICES if s not in up]
    lines = [f'[repository]\nlocation = "{repo}"\n']
    lines += [f"[services.{name}]\nrequired = false\n" for name in others]
    (stack.path / "sbx.toml").write_text("\n".join(lines))
    releases.publish(first)
    releases.client.images.pull(releases.repository, tag="stable")
    stack.compose("up", "-d", "--no-deps", "--wait", "--wait-timeout", "90", *up, timeout=150)


def cli_runner(prefect_server: str, stack: RunningStack, default_timeout: float = 400) -> Sbx:
    """The sbx CLI in a subprocess against ``stack`` and the test's Prefect server; ``env``
    adds variables to one call."""

    def run(
        *args: str, timeout: float = default_timeout, env: dict[str, str] | None = None
    ) -> CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sbx", *args, "--stack", str(stack.path)],
            capture_output=True,
            text=True,
            env={**cli_env(prefect_server, stack), **(env or {})},
            timeout=timeout,
            check=False,
        )

    return run


def running_digest(client: DockerClient, stack: RunningStack, service: str = "worker") -> str:
    """repo@sha256:… of the image the service's container runs."""
    (container,) = client.containers.list(
        all=True,
        filters={"label": [f"com.docker.compose.project={stack.project}",
                           f"com.docker.compose.service={service}"]},
    )  # fmt: skip
    image = client.images.get(container.attrs["Image"])
    digests: list[str] = image.attrs.get("RepoDigests") or []
    return digests[0] if digests else container.attrs["Image"]


def journal(stack: Path) -> list[dict[str, object]]:
    path = stack / ".sbx" / "upgrade" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def changes(stack: Path) -> list[dict[str, object]]:
    """The stack's change log entries (tasks/changelog.py), oldest first."""
    path = stack / ".sbx" / "changelog.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
