"""Helpers of the upgrade tests: the releases in the registry, the journal, the CLI's env."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

from bed import RunningStack
from docker import DockerClient

RELEASES = {
    "v1": {},
    "v2-error": {"STANDIN_FAIL_MODE": "error"},
    "v2-crash": {"STANDIN_FAIL_MODE": "crash", "STANDIN_CRASH_AFTER": "2"},
    "v2-slow": {"STANDIN_FAIL_MODE": "slow-start", "STANDIN_START_DELAY": "120"},
    "v3": {},
}
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


def cli_env(prefect_server: str, stack: RunningStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(stack.compose_env, PREFECT_API_URL=prefect_server, COLUMNS="200", **GATE)
    return env


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
