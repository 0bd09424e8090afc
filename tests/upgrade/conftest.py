"""Upgrade tests: stand-in vLLM releases in the local registry, one worker-only stack per module.

Releases (each a one-layer image FROM the vLLM stand-in, labelled for cleanup, pushed by tag):
v1 healthy, v2-error (500 on every completion), v2-crash (exits 2 s after start: a crash loop),
v2-slow (answers after 120 s: slower than any soak window here), v3 healthy. The worker's compose
image is the moving tag ``.../vllm:stable``; :func:`Releases.publish` points it at a release.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bed.stack import OVERRIDE, RunningStack, prepare_stack, stop_stack
from docker import DockerClient
from upgrade_bed import (
    QDRANT_RELEASES,
    RELEASES,
    WEBUI_RELEASES,
    Releases,
    Sbx,
    build_releases,
    cli_runner,
)


@pytest.fixture(scope="module")
def releases(
    docker_engine: DockerClient, standin_images: dict[str, str], registry: str, run_id: str
) -> Releases:
    repository = f"{registry}/sbxt-{run_id}/vllm"
    return build_releases(docker_engine, standin_images["vllm"], repository, run_id, RELEASES)


@pytest.fixture(scope="module")
def webui_releases(
    docker_engine: DockerClient, standin_images: dict[str, str], registry: str, run_id: str
) -> Releases:
    """Open WebUI releases (upgrade_bed.WEBUI_RELEASES) FROM the stand-in."""
    repository = f"{registry}/sbxt-{run_id}/webui"
    return build_releases(
        docker_engine, standin_images["webui"], repository, run_id, WEBUI_RELEASES
    )


@pytest.fixture(scope="module")
def qdrant_releases(
    docker_engine: DockerClient, standin_images: dict[str, str], registry: str, run_id: str
) -> Releases:
    """Qdrant releases (upgrade_bed.QDRANT_RELEASES) FROM the stand-in."""
    repository = f"{registry}/sbxt-{run_id}/qdrant"
    return build_releases(
        docker_engine, standin_images["qdrant"], repository, run_id, QDRANT_RELEASES
    )


@pytest.fixture(scope="module")
def worker_stack(
    releases: Releases, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The example stack with only ``worker`` up, its image the registry's ``stable`` tag (v1)."""
    stack = prepare_stack(tmp_path_factory.mktemp("upgrade") / "stack", run_id)
    override = stack.path / OVERRIDE
    override.write_text(
        override.read_text().replace("  worker:\n", f"  worker:\n    image: {releases.stable}\n")
    )
    releases.publish("v1")
    releases.client.images.pull(releases.repository, tag="stable")
    try:
        stack.compose("up", "-d", "--wait", "--wait-timeout", "90", "worker", timeout=150)
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture
def run_sbx(prefect_server: str, worker_stack: RunningStack) -> Sbx:
    """The sbx CLI in a subprocess against the worker stack and the test's Prefect server."""
    return cli_runner(prefect_server, worker_stack, default_timeout=300)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """tests/conftest.py's harness with a longer start-up allowance: these tests run beside
    image builds and stacks, and 60 s was too short on a loaded 2-core box."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        assert url, "prefect_test_harness set no API URL"
        yield str(url)
