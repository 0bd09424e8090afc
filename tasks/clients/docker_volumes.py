"""Named Docker volumes read and written through Docker itself, never through the daemon's
data directory (which may be on another host, rootless, or another driver).

Reading needs no running process: a helper container is *created* (never started) with the
volume mounted read-only, and the daemon streams a tar of the mount point (``get_archive``).
Writing empties the volume with a one-shot helper running ``find … -exec rm -rf`` (the image
needs a shell and ``find``), then unpacks a tar into it with ``put_archive`` on a created helper.
The helper image is one the box already has (a service's own image): nothing is pulled.
Every helper carries the label ``sbx.helper=volume`` and is removed at once, also on failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from sbx.errors import DockerOperationFailed, DockerUnavailable

HELPER_LABEL = "sbx.helper"
MOUNT_POINT = "/sbx-volume"
CHUNK = 1 << 20


class DockerVolumes:
    """Named volumes of one Docker Engine. Build with :func:`connect`."""

    def __init__(self, client: docker.DockerClient, where: str) -> None:
        self._client = client
        self.where = where

    def exists(self, name: str) -> bool:
        try:
            self._client.volumes.get(name)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            raise self._failed(f"look up volume {name}", exc) from exc
        return True

    def read_to_tar(self, name: str, image: str, dest: Path) -> int:
        """Write a tar of the volume's content (its top directory named ``sbx-volume``) to
        ``dest``, streamed; returns the bytes written."""
        written = 0
        with self._helper(name, image, read_only=True) as helper, dest.open("wb") as out:
            try:
                stream, _ = helper.get_archive(MOUNT_POINT, chunk_size=CHUNK)
                for chunk in stream:
                    out.write(chunk)
                    written += len(chunk)
            except docker.errors.APIError as exc:
                raise self._failed(f"read volume {name}", exc) from exc
        return written

    def replace_from_tar(self, name: str, image: str, tar: Path, *, at: str = MOUNT_POINT) -> None:
        """Empty the volume, then unpack ``tar`` into it: paths relative to the volume's root
        (``at`` the mount point), or as :meth:`read_to_tar` wrote them (``at="/"``)."""
        command = ["find", MOUNT_POINT, "-mindepth", "1", "-maxdepth", "1", "-exec", "rm", "-rf"]
        try:
            self._client.containers.run(
                image,
                entrypoint=[],
                command=[*command, "{}", "+"],
                volumes={name: {"bind": MOUNT_POINT, "mode": "rw"}},
                labels={HELPER_LABEL: "volume"},
                network_disabled=True,
                user="0",
                remove=True,
            )
        except docker.errors.ContainerError as exc:
            raise DockerOperationFailed(
                f"Could not empty volume {name} with a helper of image {image} at {self.where} "
                f"({exc}). The image needs 'find' and 'rm'; restore with --to DIR and copy "
                f"volumes/{name}/ into the volume yourself."
            ) from exc
        except docker.errors.APIError as exc:
            raise self._failed(f"empty volume {name}", exc) from exc
        with self._helper(name, image, read_only=False) as helper, tar.open("rb") as data:
            try:
                if not helper.put_archive(at, data):
                    raise DockerOperationFailed(f"Docker refused to write volume {name}.")
            except docker.errors.APIError as exc:
                raise self._failed(f"write volume {name}", exc) from exc

    @contextmanager
    def _helper(self, name: str, image: str, *, read_only: bool) -> Iterator[Container]:
        try:
            helper = self._client.containers.create(
                image,
                entrypoint=[],
                command=["true"],  # never run: the daemon reads and writes a created container
                volumes={name: {"bind": MOUNT_POINT, "mode": "ro" if read_only else "rw"}},
                labels={HELPER_LABEL: "volume"},
                network_disabled=True,
            )
        except docker.errors.APIError as exc:
            raise self._failed(f"create a helper container for volume {name}", exc) from exc
        try:
            yield helper
        finally:
            # labelled sbx.helper=volume: 'docker ps -a' finds one a failure left
            with suppress(docker.errors.APIError):
                helper.remove(force=True, v=False)

    def _failed(self, action: str, exc: docker.errors.APIError) -> DockerOperationFailed:
        return DockerOperationFailed(
            f"Docker could not {action} at {self.where}: {exc.explanation or exc}. Check the "
            "volume with 'docker volume inspect' and the daemon's log.",
            retryable=exc.is_server_error(),
        )

    def close(self) -> None:
        self._client.close()


@contextmanager
def connect(*, timeout_s: int = 600) -> Iterator[DockerVolumes]:
    """Connect to the engine named by DOCKER_HOST (a large volume streams for a while)."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailable(where, str(exc)) from exc
    volumes = DockerVolumes(client, where)
    try:
        yield volumes
    finally:
        volumes.close()
