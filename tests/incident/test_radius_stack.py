"""Blast radius and containment on the running stack with the seeded compromise (issue #7):
real proxy, real agent, real qdrant stand-in, through the sbx CLI."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bed import RunningStack, require_service, wait_until
from bed.engine import LABEL
from bed.qdrant_seed import seed_qdrant
from docker import DockerClient
from docker.models.containers import Container

from incident.conftest import Sbx
from tasks.changelog import read_changes
from tasks.upgrade.journal import JournalEntry, Release, ServiceImage, close_entry


@pytest.fixture
def seed() -> Callable[[RunningStack], Any]:
    """incident-bed's seed_compromise; asked for before running_stack, so a branch without it
    skips (fails under CI) before a stack is brought up for nothing."""
    try:
        from bed.incident_seed import seed_compromise  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        require_service(
            "incident-bed",
            "tests/bed/incident_seed.py (the proxy and agent stand-ins) is not on this branch; "
            "merge main once the incident-bed work has landed",
        )
    return seed_compromise  # type: ignore[no-any-return, unused-ignore]


def _status(stack: RunningStack, key: str) -> int:
    """What the proxy answers a key on /v1/models (0 while it is not listening)."""
    try:
        with httpx.Client(verify=stack.proxy_tls(), timeout=10, trust_env=False) as client:
            url = f"{stack.url('proxy')}/v1/models"
            return client.get(url, headers={"Authorization": f"Bearer {key}"}).status_code
    except httpx.HTTPError:
        return 0


def _journal_clean_agent(
    engine: DockerClient, registry: str, run_id: str, stack: RunningStack
) -> tuple[str, str]:
    """Push the agent's image to the registry and record it in the upgrade journal as the
    committed release: (digest, id of the container running now)."""
    repository = f"{registry}/sbxt-{run_id}/agent"
    dockerfile = f'FROM sbx-standin-agent:dev\nLABEL {LABEL}="{run_id}"\n'
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{repository}:clean")
    engine.images.push(repository, tag="clean")
    digest = f"{repository}@{engine.images.get_registry_data(f'{repository}:clean').id}"
    image = ServiceImage(service="internet-research", image_ref=f"{repository}:clean",
                         digest=digest)  # fmt: skip
    release = Release(images={"internet-research": image}, compose_files={},
                      env_fingerprints={}, models={})  # fmt: skip
    close_entry(stack.path, JournalEntry(action="upgrade", services=["internet-research"],
                                         before=release), "committed")  # fmt: skip
    return digest, _agent(engine, stack).id


def _agent(engine: DockerClient, stack: RunningStack) -> Container:
    (container,) = engine.containers.list(filters={"label": [
        f"com.docker.compose.project={stack.project}",
        "com.docker.compose.service=internet-research"]})  # fmt: skip
    return container


def test_seeded_compromise_is_found_and_contained(
    seed: Callable[[RunningStack], Any],
    running_stack: RunningStack,
    run_sbx: Sbx,
    docker_engine: DockerClient,
    registry: str,
    run_id: str,
) -> None:
    seeded = seed(running_stack)
    # a collection written in the window
    seed_qdrant(running_stack.url("qdrant"), {"notes": 3}, running_stack.api_key("qdrant"))
    env = running_stack.compose_env
    stack = ["--stack", str(running_stack.path)]
    found = run_sbx("incident", "blast-radius", "--since", seeded.since.isoformat(), "--json",
                    *stack, env=env)  # fmt: skip
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert [k["fingerprint"] for k in report["api_keys"] if k["flagged"]] == [seeded.leaked_fp]
    assert [f["url"] for f in report["off_list"]] == [seeded.off_list_url]
    assert not [s for s in report["sources"] if s["error"]], report["sources"]
    notes = next(c for c in report["collections"] if c["name"] == "notes")
    assert notes["points"] == 3 and notes["writes"] >= 2  # create + upsert

    keys = running_stack.proxy_keys()
    allow = running_stack.path / "agents" / "internet-research" / "allowlist.txt"
    blocked = "en.wikipedia.org"
    assert blocked in allow.read_text()
    clean, compromised = _journal_clean_agent(docker_engine, registry, run_id, running_stack)
    done = run_sbx("incident", "contain", "--from-blast-radius", "--block-domain", blocked,
                   "--recreate", "internet-research", "--yes", *stack, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert wait_until(lambda: _status(running_stack, keys["ops"]) == 200, timeout=60)
    assert _status(running_stack, keys[seeded.leaked_key_name]) == 401
    assert blocked not in allow.read_text()
    agent = _agent(docker_engine, running_stack)
    assert agent.id != compromised  # a new container, from the journal's digest
    assert clean in (docker_engine.images.get(agent.attrs["Image"]).attrs["RepoDigests"] or [])
    actions = [c.action for c in read_changes(running_stack.path)]
    assert actions == ["incident-block-domain", "incident-revoke-key", "incident-restart",
                       "incident-recreate"]  # fmt: skip
    for text in (found.stdout, found.stderr, done.stdout, done.stderr,
                 *(p.read_text() for p in (running_stack.path / ".sbx").rglob("*")
                   if p.is_file())):  # fmt: skip
        assert not any(value in text for value in keys.values())
