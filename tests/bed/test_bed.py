"""The test bed itself: each service answers and does the one thing tests rely on it for."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

import docker.errors
import httpx
import pytest
from docker import DockerClient

from bed import RunningStack, S3Server, require_service
from bed.engine import LABEL
from bed.images import build_images


def test_require_service_skips_when_run_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SBX_TEST_REQUIRE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="service 'docker' is not available: gone"):
        require_service("docker", "gone")


@pytest.mark.parametrize(
    ("ci", "require", "name"),
    [("true", "", "docker"), ("", "registry,docker", "docker"), ("", "all", "gpu")],
)
def test_require_service_fails_when_required(
    monkeypatch: pytest.MonkeyPatch, ci: str, require: str, name: str
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("SBX_TEST_REQUIRE", require)
    with pytest.raises(pytest.fail.Exception, match=f"service '{name}' is not available"):
        require_service(name, "gone")


def test_gpu_is_not_required_by_ci_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("SBX_TEST_REQUIRE", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_service("gpu", "no NVIDIA driver")


def test_docker_answers(docker_engine: DockerClient) -> None:
    assert docker_engine.ping()
    assert docker_engine.version()["ApiVersion"]


def test_images_are_cached_by_content(
    docker_engine: DockerClient, standin_images: dict[str, str]
) -> None:
    assert set(standin_images) == {"base", "vllm", "qdrant", "webui", "proxy", "agent"}
    started = time.monotonic()
    again = build_images()
    assert time.monotonic() - started < 20, "a second build_images() rebuilt something"
    assert again == standin_images
    for name in ("vllm", "qdrant", "webui", "proxy", "agent"):
        built = docker_engine.images.get(standin_images[name])
        assert docker_engine.images.get(f"sbx-standin-{name}:dev").id == built.id
        assert built.attrs["Config"]["Healthcheck"]["Test"], f"{name} has no health check"


def _push(client: DockerClient, repo: str, tag: str) -> str:
    """Push repo:tag, return the manifest digest the registry reported."""
    digest = ""
    for line in client.images.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
        aux: dict[str, Any] = line.get("aux") or {}
        digest = aux.get("Digest", digest)
    assert digest.startswith("sha256:"), "the push reported no digest"
    return digest


def test_registry_push_pull_standin_by_tag_and_digest(
    docker_engine: DockerClient, registry: str, standin_images: dict[str, str], run_id: str
) -> None:
    image = docker_engine.images.get(standin_images["vllm"])
    repo = f"{registry}/sbx-test-{run_id}/vllm"
    assert image.tag(repo, tag="v1")
    digest = _push(docker_engine, repo, "v1")
    docker_engine.images.remove(f"{repo}:v1")

    by_tag = docker_engine.images.pull(repo, tag="v1")
    assert by_tag.id == image.id
    docker_engine.images.remove(f"{repo}:v1")
    by_digest = docker_engine.images.pull(f"{repo}@{digest}")
    assert by_digest.id == image.id
    assert f"{repo}@{digest}" in by_digest.attrs["RepoDigests"]
    docker_engine.images.remove(f"{repo}@{digest}")  # the reference only: the image stays


def test_registry_round_trip_of_an_image_gone_locally(
    docker_engine: DockerClient, registry: str, run_id: str
) -> None:
    # a one-file, one-layer image, removed entirely before the pull: every blob must come back
    # from the registry (the stand-in above shares its layers with images that stay local)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("marker")
        info.size = len(run_id)
        tar.addfile(info, io.BytesIO(run_id.encode()))
    repo = f"{registry}/sbx-test-{run_id}/marker"
    docker_engine.api.import_image_from_data(
        layer.getvalue(), repository=repo, tag="v1", changes=[f"LABEL {LABEL}={run_id}"]
    )
    image = docker_engine.images.get(f"{repo}:v1")
    image_id = str(image.id)
    digest = _push(docker_engine, repo, "v1")
    docker_engine.images.remove(image_id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_engine.images.get(image_id)

    pulled = docker_engine.images.pull(f"{repo}@{digest}")
    assert pulled.id == image_id
    container = docker_engine.containers.create(image_id, command=["none"], labels={LABEL: run_id})
    try:
        stream, _ = container.get_archive("/marker")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("marker")
            assert member is not None and member.read() == run_id.encode()
    finally:
        container.remove(force=True)
        docker_engine.images.remove(image_id, force=True)


def test_s3_put_get(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    s3 = s3_server.client()
    body = b"sealed box\n" * 1000
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=body)
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == body
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b.txt"]
    assert s3_server.env()["AWS_ENDPOINT_URL"] == s3_server.endpoint_url


def test_prefect_flow_run_is_readable(prefect_server: str) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="bed-add")
    def add(a: int, b: int) -> int:
        return a + b

    state = add(1, 2, return_state=True)
    assert state.result() == 3
    with get_client(sync_client=True) as client:
        assert str(client.api_url).rstrip("/") == prefect_server.rstrip("/")
        run_id = state.state_details.flow_run_id
        assert run_id is not None
        run = client.read_flow_run(run_id)
    assert run.state is not None and run.state.is_completed()
    assert run.parameters == {"a": 1, "b": 2}


HEALTH_PATHS = {"worker": "/health", "watchdog": "/health", "qdrant": "/healthz",
                "open-webui": "/health", "proxy": "/health",
                "internet-research": "/health"}  # fmt: skip


def test_running_stack(
    running_stack: RunningStack, docker_engine: DockerClient, run_id: str
) -> None:
    ps = running_stack.compose("ps", "--all", "--format", "json").stdout
    # compose prints one JSON object per line (v2.21+) or one array (older)
    entries = [json.loads(line) for line in ps.splitlines() if line.strip()]
    rows = [e for entry in entries for e in (entry if isinstance(entry, list) else [entry])]
    assert {r["Service"] for r in rows} == set(HEALTH_PATHS)

    containers = docker_engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={running_stack.project}"}
    )
    assert len(containers) == len(HEALTH_PATHS)
    for c in containers:
        service = c.labels["com.docker.compose.service"]
        assert c.status == "running", service
        assert c.attrs["State"]["Health"]["Status"] == "healthy", service
        assert c.labels.get(LABEL) == run_id, f"{service} lacks the {LABEL} label"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", service
    networks = docker_engine.networks.list(filters={"label": f"{LABEL}={run_id}"})
    assert f"{running_stack.project}_default" in {n.name for n in networks}

    # the proxy speaks TLS on 127.0.0.1 (the test copy's bind) with the example certificate
    assert running_stack.url("proxy").startswith("https://127.0.0.1:")
    proxy_ports = next(c for c in containers if c.labels["com.docker.compose.service"] == "proxy")
    assert {b["HostIp"] for b in proxy_ports.ports["443/tcp"]} == {"127.0.0.1"}
    with httpx.Client(timeout=5, trust_env=False, verify=running_stack.proxy_tls()) as http:
        for service, path in HEALTH_PATHS.items():
            resp = http.get(running_stack.url(service) + path)
            assert resp.status_code == 200, f"{service}{path}: {resp.status_code}"
        worker_models = running_stack.url("worker") + "/v1/models"
        models = http.get(worker_models, headers=running_stack.auth("worker")).json()
    assert models["data"][0]["id"] == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert (running_stack.path / "data" / "open-webui" / "webui.db").exists()


def test_bed_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SBX_TEST_REQUIRE", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y docker-registry"):
        require_service("registry", "docker-registry is not installed (apt-get install -y "
                        "docker-registry)")  # fmt: skip
