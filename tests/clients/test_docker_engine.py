"""The Docker and compose clients against a real engine and the running example stack."""

from __future__ import annotations

import pytest
from bed import RunningStack

from sbx.errors import ContainerNotFound, DockerUnavailable, StackError
from tasks.clients.compose import ComposeCli
from tasks.clients.docker_engine import connect


def test_project_containers_state_and_control(
    running_stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in running_stack.compose_env.items():
        monkeypatch.setenv(key, value)
    model = ComposeCli(running_stack.path).model()
    assert model.project == running_stack.project
    assert set(model.services) == {
        "worker", "watchdog", "qdrant", "open-webui", "proxy", "internet-research"
    }  # fmt: skip
    assert model.services["open-webui"].depends_on == ["qdrant", "worker"]
    assert model.services["qdrant"].published_ports == [running_stack.ports["qdrant"]]

    with connect() as engine:
        infos = engine.project_containers(running_stack.project)
        assert sorted(i.service or "" for i in infos) == sorted(model.services)
        qdrant = engine.service_container(running_stack.project, "qdrant")
        assert qdrant.running and qdrant.started_at is not None
        assert qdrant.image_ref.startswith("sbx-standin-qdrant:")  # this checkout's build
        assert qdrant.image_id.startswith("sha256:")
        assert qdrant.health in {"starting", "healthy"}
        (port,) = qdrant.ports
        assert port.container_port == 6333 and port.loopback_only
        assert port.host_port == running_stack.ports["qdrant"]

        engine.stop(qdrant.id, timeout_s=2)
        stopped = engine.service_container(running_stack.project, "qdrant")
        assert stopped.state == "exited" and stopped.started_at is None and not stopped.ports
        engine.start(qdrant.id)
        assert engine.service_container(running_stack.project, "qdrant").running
        assert "GET" in engine.logs(qdrant.id) or engine.logs(qdrant.id, tail=5) != ""
        assert engine.inspect(qdrant.id)["Id"] == qdrant.id

        with pytest.raises(ContainerNotFound, match="service 'tunnel'"):
            engine.service_container(running_stack.project, "tunnel")
        assert engine.project_containers("no-such-project") == []


def test_unreachable_daemon_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable) as caught, connect(timeout_s=2):
        pass
    message = str(caught.value)
    assert "unix:///nonexistent/docker.sock" in message and "DOCKER_HOST" in message
    assert caught.value.retryable


def test_compose_errors_say_what_failed(tmp_path: object) -> None:
    from pathlib import Path

    stack = Path(str(tmp_path))
    (stack / "docker-compose.yml").write_text("services:\n  a:\n    image: [\n")
    with pytest.raises(Exception) as caught:
        ComposeCli(stack).model()
    assert "config --format json" in str(caught.value)
    assert "failed with exit status" in str(caught.value)
    with pytest.raises(StackError, match="does not exist"):
        ComposeCli(stack / "missing")
