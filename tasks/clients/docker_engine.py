"""Docker Engine client: the compose project's containers, their state, and start/stop/logs.

The only module that imports docker-py. Every SDK error is translated into the sbx error tree:
an unreachable daemon is :class:`DockerUnavailable` (retryable), a missing container
:class:`ContainerNotFound`, a daemon-side failure (5xx) a retryable :class:`DockerOperationFailed`.
Timeouts are set on the client (a task timeout cannot interrupt blocking I/O in a thread).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.utils import parse_repository_tag
from pydantic import BaseModel, ConfigDict

from sbx.errors import ContainerNotFound, DockerOperationFailed, DockerUnavailable

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_WORKDIR_LABEL = "com.docker.compose.project.working_dir"


class PublishedPort(BaseModel):
    model_config = ConfigDict(frozen=True)

    container_port: int
    protocol: str
    host_ip: str
    host_port: int

    @property
    def loopback_only(self) -> bool:
        return self.host_ip.startswith("127.") or self.host_ip == "::1"


class ContainerInfo(BaseModel):
    """What sbx needs to know about one container, read from `docker inspect`."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    service: str | None
    state: str  # created | running | paused | restarting | removing | exited | dead
    health: str | None  # starting | healthy | unhealthy, None without a healthcheck
    exit_code: int | None
    restart_count: int
    started_at: datetime | None
    image_ref: str  # what the compose file asked for, e.g. "vllm/vllm-openai:v0.6.3"
    image_id: str  # sha256:... of the local image
    repo_digests: list[str]  # "repo@sha256:..." as pulled from a registry (empty for local builds)
    ports: list[PublishedPort]
    working_dir: str | None = None  # the directory compose ran in for this container
    networks: list[str] = []  # the Docker networks it is attached to, by name

    @property
    def running(self) -> bool:
        return self.state == "running"


class DockerEngine:
    """A Docker Engine reached through docker-py. Build with :func:`connect`."""

    def __init__(self, client: docker.DockerClient, where: str) -> None:
        self._client = client
        self.where = where

    def ping(self) -> None:
        with self._translate("ping"):
            self._client.ping()

    def project_containers(self, project: str, *, all_states: bool = True) -> list[ContainerInfo]:
        """Containers of a compose project (stopped ones too), sorted by service then name."""
        with self._translate(f"list containers of project '{project}'"):
            containers = self._client.containers.list(
                all=all_states, filters={"label": f"{COMPOSE_PROJECT_LABEL}={project}"}
            )
            infos = [self._describe(c) for c in containers]
        return sorted(infos, key=lambda info: (info.service or "", info.name))

    def service_container(self, project: str, service: str) -> ContainerInfo:
        """The (first) container of a compose service; raises ContainerNotFound."""
        for info in self.project_containers(project):
            if info.service == service:
                return info
        raise ContainerNotFound(f"service '{service}'", project)

    def stop(self, container_id: str, *, timeout_s: int = 30) -> None:
        with self._translate(f"stop container {container_id[:12]}"):
            self._client.containers.get(container_id).stop(timeout=timeout_s)

    def start(self, container_id: str) -> None:
        with self._translate(f"start container {container_id[:12]}"):
            self._client.containers.get(container_id).start()

    def restart(self, container_id: str, *, timeout_s: int = 30) -> None:
        with self._translate(f"restart container {container_id[:12]}"):
            self._client.containers.get(container_id).restart(timeout=timeout_s)

    def logs(
        self, container_id: str, *, since: datetime | None = None, tail: int | None = None
    ) -> str:
        """Timestamped stdout+stderr of a container (for evidence and diagnosis)."""
        with self._translate(f"read logs of container {container_id[:12]}"):
            raw = self._client.containers.get(container_id).logs(
                timestamps=True, since=since, tail="all" if tail is None else tail
            )
        return raw.decode("utf-8", errors="replace")

    def logs_to(self, container_id: str, path: Path) -> int:
        """Write the container's timestamped stdout+stderr to ``path``, streamed (a large log is
        never held in memory); returns the bytes written."""
        written = 0
        with (
            self._translate(f"read logs of container {container_id[:12]}"),
            path.open("wb") as handle,
        ):
            container = self._client.containers.get(container_id)
            for chunk in container.logs(stream=True, follow=False, timestamps=True):
                handle.write(chunk)
                written += len(chunk)
        return written

    def inspect(self, container_id: str) -> dict[str, Any]:
        with self._translate(f"inspect container {container_id[:12]}"):
            attrs: dict[str, Any] = self._client.api.inspect_container(container_id)
        return attrs

    def stats(self, container_id: str) -> dict[str, Any]:
        """One sample of the stats API (``stream=False``: the daemon waits ~1 s for a CPU delta)."""
        with self._translate(f"read stats of container {container_id[:12]}"):
            raw: dict[str, Any] = self._client.api.stats(container_id, stream=False)
        return raw

    def pull(self, ref: str) -> list[str]:
        """Pull ``ref`` (tag or digest) from its registry; returns the image's repo digests."""
        repository, tag = parse_repository_tag(ref)  # "host:5000/x:tag", "x@sha256:…"
        with self._translate(f"pull image {ref}"):
            image = self._client.images.pull(repository, tag=tag or "latest")
        digests: list[str] = image.attrs.get("RepoDigests") or []
        return digests

    def image_digests(self, ref: str) -> list[str] | None:
        """Repo digests of the local image ``ref`` names; None when no such image is here."""
        try:
            image: dict[str, Any] = self._client.api.inspect_image(ref)  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
            raise DockerOperationFailed(
                f"Docker could not inspect image {ref} at {self.where}: {exc.explanation}. "
                "Retry; if it persists check the daemon's log.",
                retryable=exc.is_server_error(),
            ) from exc
        digests: list[str] = image.get("RepoDigests") or []
        return digests

    def registry_digest(self, ref: str) -> str:
        """The manifest digest ``ref`` (a tag) points at in its registry now (nothing pulled)."""
        with self._translate(f"ask the registry about {ref}"):
            data = self._client.images.get_registry_data(ref)
        return str(data.id)

    def tag(self, source: str, ref: str) -> None:
        """Point the local tag ``ref`` ("repo:tag") at the image ``source`` names."""
        repository, tag = parse_repository_tag(ref)
        with self._translate(f"tag {source} as {ref}"):
            self._client.images.get(source).tag(repository, tag or "latest")

    def close(self) -> None:
        self._client.close()

    def _describe(self, container: Container) -> ContainerInfo:
        attrs = container.attrs
        state = attrs.get("State", {})
        labels = attrs.get("Config", {}).get("Labels") or {}
        image_id = attrs.get("Image", "")
        return ContainerInfo(
            id=container.id or "",
            name=(attrs.get("Name") or "").lstrip("/"),
            service=labels.get(COMPOSE_SERVICE_LABEL),
            state=state.get("Status", "unknown"),
            health=(state.get("Health") or {}).get("Status"),
            exit_code=state.get("ExitCode"),
            restart_count=attrs.get("RestartCount", 0),
            started_at=_parse_time(state.get("StartedAt")) if state.get("Running") else None,
            image_ref=attrs.get("Config", {}).get("Image", ""),
            image_id=image_id,
            repo_digests=self._repo_digests(image_id),
            ports=_published_ports(attrs.get("NetworkSettings", {}).get("Ports") or {}),
            working_dir=labels.get(COMPOSE_WORKDIR_LABEL),
            networks=sorted((attrs.get("NetworkSettings", {}).get("Networks") or {}).keys()),
        )

    def _repo_digests(self, image_id: str) -> list[str]:
        try:
            image: dict[str, Any] = self._client.api.inspect_image(image_id)  # type: ignore[no-untyped-call]
            digests: list[str] = image.get("RepoDigests") or []
        except docker.errors.NotFound:
            return []  # image removed while the container still exists
        return digests

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except docker.errors.NotFound as exc:
            raise DockerOperationFailed(
                f"Docker could not {action} at {self.where}: not found ({exc.explanation}). "
                "The container may have been removed; check 'sbx status'."
            ) from exc
        except docker.errors.APIError as exc:
            server_side = exc.is_server_error()
            raise DockerOperationFailed(
                f"Docker could not {action} at {self.where}: {exc.explanation or exc}. "
                + (
                    "Retry; if it persists check the daemon's log."
                    if server_side
                    else "Check the container with 'docker inspect'."
                ),
                retryable=server_side,
            ) from exc
        except (docker.errors.DockerException, ConnectionError, OSError) as exc:
            raise DockerUnavailable(self.where, f"could not {action}: {exc}") from exc


def _published_ports(ports: dict[str, list[dict[str, str]] | None]) -> list[PublishedPort]:
    published = []
    for key, bindings in ports.items():
        port, _, protocol = key.partition("/")
        for binding in bindings or []:
            published.append(
                PublishedPort(
                    container_port=int(port),
                    protocol=protocol or "tcp",
                    host_ip=binding.get("HostIp") or "0.0.0.0",  # noqa: S104 (read, not bound)
                    host_port=int(binding.get("HostPort") or 0),
                )
            )
    return sorted(published, key=lambda p: (p.container_port, p.host_ip))


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    # Docker gives nanoseconds ("2026-11-26T21:10:54.123456789Z"); Python takes microseconds
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


@contextmanager
def connect(*, timeout_s: int = 60) -> Iterator[DockerEngine]:
    """Connect to the engine named by DOCKER_HOST (default: the local socket) and ping it."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout_s)
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(where, str(exc)) from exc
    engine = DockerEngine(client, where)
    try:
        engine.ping()
        yield engine
    finally:
        engine.close()
