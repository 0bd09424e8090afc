"""Preserve is always safe to run: without Docker it seals what it can have and says what not."""

from __future__ import annotations

from pathlib import Path

import pytest
from bed.local_prefect import copy_files_stack

from flows.incident.preserve import preserve_evidence, verify_evidence
from sbx.errors import EvidenceIncomplete
from tasks.incident.bundle import latest_bundle, verify_bundle
from tasks.incident.record import current_incident, incident_dir, read_actions


def test_without_docker_the_bundle_is_sealed_naming_what_is_missing(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = copy_files_stack(tmp_path / "stack")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", f"sbxt-nodocker-{tmp_path.name}".lower())
    with pytest.raises(EvidenceIncomplete) as caught:
        preserve_evidence(stack=str(stack))
    message = str(caught.value)
    assert "containers: Docker is not reachable" in message
    assert "metrics: Docker is not reachable" in message
    info = current_incident(stack)
    assert info is not None
    bundle = latest_bundle(incident_dir(stack, info.id) / "evidence")
    assert bundle is not None
    check = verify_bundle(bundle)
    assert check.problems == []
    listed = set((bundle / "MANIFEST.sha256").read_text().split())
    assert {"logs/worker.log.1", "compose/config.json", "env/fingerprints.json"} <= listed
    assert verify_evidence(stack=str(stack)).ok  # what it holds verifies, hash as recorded
    action = read_actions(stack, info.id)[0]
    assert (action.step, action.ok) == ("preserve", False)
