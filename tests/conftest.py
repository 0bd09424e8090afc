"""Session test bed: real services, started on demand, skipped (or failed in CI) when missing.

Fixtures (design.md "Test bed", style.md "Tests"):

    run_id          str               short unique id of this session (labels, names, prefixes)
    docker_engine   docker.DockerClient   the running daemon, else a dockerd started here
    standin_images  dict[str, str]    {"base", "vllm", "qdrant", "webui", "proxy", "agent"} -> tags
    registry        str               "127.0.0.1:PORT" of a registry without auth
    s3_server       bed.S3Server      moto's server mode over HTTP on a free port
    fault_proxy     bed.FaultProxy    a proxy in front of s3_server failing ~20 % of requests
    prefect_server  str               API URL of prefect_test_harness (settings point at it)
    fleet_server    bed.FleetServer   Prefect on a throw-away PostgreSQL cluster (a fleet's)
    running_stack   bed.RunningStack  a copy of examples/stack up as its own compose project

A missing service skips the tests that need it, naming it and how to get it; with CI=true or
SBX_TEST_REQUIRE=docker,registry,... (or "all") it fails them instead. Tests using these fixtures
get the matching marker (docker, registry, s3, prefect, postgres), so ``-m "not docker"`` works.
"""

# ruff: noqa: E402
# (imports below the environment set-up on purpose: it must precede any import of prefect)
from __future__ import annotations

import os
import shutil
import tempfile

# Prefect reads its settings once, at import: isolate it from the caller's home and server.
_PREFECT_HOME = tempfile.mkdtemp(prefix="sbx-test-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
for _var in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_var, None)

import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bed import FaultProxy, FleetServer, RunningStack, S3Server, require_service
from bed.digest import record as record_failure
from bed.engine import docker_engine_session, remove_test_objects
from bed.images import build_images, build_module
from bed.postgres import postgres_cluster, prefect_on_postgres
from bed.registry import registry_session
from bed.s3 import s3_session
from bed.stack import prepare_stack, start_stack, stop_stack

if TYPE_CHECKING:
    from docker import DockerClient

FIXTURE_MARKS = {
    "docker_engine": "docker",
    "standin_images": "docker",
    "running_stack": "docker",
    "registry": "registry",
    "s3_server": "s3",
    "fault_proxy": "s3",
    "prefect_server": "prefect",
    "fleet_server": "postgres",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-stack",
        action="store_true",
        help="leave running_stack projects (and labelled Docker objects) up after the session",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for mark in sorted({m for f, m in FIXTURE_MARKS.items() if f in names}):
            item.add_marker(mark)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        record_failure(item, call)
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    # the README's tour runs `sbx init --stack examples/stack`: the tests copy the example stack
    # and would inherit that sbx.toml (its repository, its off-box copy)
    written = Path(__file__).resolve().parents[1] / "examples" / "stack" / "sbx.toml"
    if written.exists():
        pytest.exit(
            f"{written} exists (written by 'sbx init' on the example stack); the tests copy "
            "the example stack and would inherit it. Move it away and run the tests again.",
            returncode=4,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def docker_engine(
    run_id: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DockerClient]:
    with docker_engine_session(tmp_path_factory.mktemp("dockerd")) as client:
        try:
            yield client
        finally:
            if not request.config.getoption("--keep-stack"):
                remove_test_objects(client, run_id)


@pytest.fixture(scope="session")
def standin_images(docker_engine: DockerClient) -> dict[str, str]:
    try:
        return build_images()
    except build_module().BuildError as exc:
        if "debootstrap" in str(exc):
            require_service("debootstrap", str(exc))
        raise


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with registry_session(tmp_path_factory.mktemp("registry")) as addr:
        yield addr


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Iterator[S3Server]:
    with s3_session(tmp_path_factory.mktemp("moto"), run_id) as server:
        yield server


@pytest.fixture
def fault_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """Dropped connections, 503 SlowDown and truncated answers on 20 % of requests (seeded)."""
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.2, seed=20) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    # ~10 s on a quiet machine; minutes when the machine is shared (one session-scoped failure
    # would error every Prefect test of the run)
    with prefect_test_harness(server_startup_timeout=240):
        url = PREFECT_API_URL.value()
        assert url, "prefect_test_harness set no API URL"
        yield str(url)


@pytest.fixture(scope="session")
def fleet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    """One PostgreSQL cluster and one Prefect server on it for the session, both stopped (and
    the cluster removed) at its end; the Prefect settings of the test process are left alone."""
    with (
        postgres_cluster() as cluster,
        prefect_on_postgres(cluster, tmp_path_factory.mktemp("fleet-server")) as server,
    ):
        yield server


@pytest.fixture
def running_stack(
    standin_images: dict[str, str],
    run_id: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[RunningStack]:
    stack = prepare_stack(tmp_path / "stack", run_id)
    start_stack(stack)
    try:
        yield stack
    finally:
        if request.config.getoption("--keep-stack"):
            print(f"\nkept {stack.project} in {stack.path}", file=sys.stderr)
        else:
            stop_stack(stack)
