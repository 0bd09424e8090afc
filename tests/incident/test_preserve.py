"""`sbx incident preserve` and `verify-evidence` on the running stack (conftest.py)."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import httpx
import pytest
from bed import RunningStack

from flows.incident.preserve import preserve_evidence, verify_evidence
from sbx.errors import EvidenceDamaged
from tasks.changelog import read_changes
from tasks.incident.bundle import CUSTODY, MANIFEST, sha256_file
from tasks.incident.record import read_actions

from .incident_bed import CANARY, close_current, incident_cli


@pytest.fixture
def stack(incident_stack: RunningStack, prefect_server: str) -> RunningStack:
    """The shared stack, its flows run against the test's Prefect server, a fresh incident."""
    close_current(incident_stack.path)
    return incident_stack


def _files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*") if p.is_file())


def test_bundle_holds_every_source_sealed_and_no_secret(stack: RunningStack) -> None:
    marker = f"/evidence-marker-{uuid.uuid4().hex}"
    httpx.get(stack.url("worker") + marker, timeout=10)  # a line in the worker's container log
    live = stack.path / "logs" / "proxy" / "access.log"
    live.parent.mkdir(parents=True, exist_ok=True)
    with live.open("a") as handle:
        handle.write(
            "203.0.113.77 - sha256:0123456789abcdef [27/Nov/2026:03:15:00 +0000] "
            '"GET /v1/models HTTP/1.1" 200 12 "-" "curl"\n'
        )
    worker = f"{stack.project}-worker-1"
    inspected = stack.compose("exec", "-T", "worker", "env").stdout
    assert CANARY in inspected  # the worker does run with the secret: redaction is what hides it

    report = preserve_evidence(stack=str(stack.path))
    bundle = report.bundle
    assert bundle.parent.parent.name == report.incident
    rel = {p.relative_to(bundle).as_posix() for p in _files(bundle)}
    assert {
        f"containers/{worker}.log",
        f"containers/{worker}.inspect.json",
        f"containers/{stack.project}-proxy-1.inspect.json",
        "logs/worker.log.1",  # rotated, from the example
        "logs/proxy/access.log",
        "compose/config.json",
        "env/fingerprints.json",
        "metrics/worker.prom",
        MANIFEST,
        CUSTODY,
    } <= rel, sorted(rel)
    assert "gpu/inventory.json" in rel or "gpu/error.json" in rel
    assert marker in (bundle / "containers" / f"{worker}.log").read_text()
    assert "vllm:num_requests_running" in (bundle / "metrics" / "worker.prom").read_text()
    fingerprints = json.loads((bundle / "env" / "fingerprints.json").read_text())
    assert fingerprints["env/canary.env"]["keys"] == ["CANARY_TOKEN"]
    inspect = json.loads((bundle / "containers" / f"{worker}.inspect.json").read_text())
    assert "CANARY_TOKEN=<redacted>" in inspect["Config"]["Env"]
    for path in _files(bundle):
        assert CANARY.encode() not in path.read_bytes(), f"the canary secret is in {path}"
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0, f"{path} is writable"
    assert stat.S_IMODE(bundle.stat().st_mode) & 0o222 == 0

    # the bundle's hash: the manifest's sha256, in the change log and the incident's actions
    assert report.manifest_sha256 == sha256_file(bundle / MANIFEST)
    entry = read_changes(stack.path)[-1]
    assert entry.action == "incident-evidence"
    assert entry.after["manifest_sha256"] == report.manifest_sha256
    action = read_actions(stack.path, report.incident)[-1]
    assert (action.step, action.details["manifest_sha256"]) == ("preserve", report.manifest_sha256)

    # the container is recreated (its old log is gone from Docker): the bundle still has it
    old_id = json.loads((bundle / "containers" / f"{worker}.inspect.json").read_text())["Id"]
    stack.compose("up", "-d", "--wait", "--force-recreate", "--no-deps", "worker", timeout=240)
    assert marker not in stack.compose("logs", "--no-color", "worker").stdout
    checked = verify_evidence(stack=str(stack.path))
    assert checked.ok and checked.files == len(rel) - 2
    assert old_id not in stack.compose("ps", "-q", "worker").stdout

    lines = [json.loads(x) for x in (bundle / CUSTODY).read_text().splitlines()]
    assert [x["what"] for x in lines] == ["preserve started", "preserved and sealed", "verified"]


def test_one_changed_byte_fails_verify_naming_the_file(
    stack: RunningStack, prefect_server: str
) -> None:
    report = preserve_evidence(stack=str(stack.path))
    bundle = report.bundle
    target = bundle / "compose" / "config.json"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.chmod(0o644)  # as an attacker (or root, who ignores the mode) would
    target.write_bytes(bytes(raw))

    done = incident_cli(prefect_server, "verify-evidence", str(bundle), stack=stack)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "changed compose/config.json" in done.stderr
    lines = (bundle / CUSTODY).read_text().splitlines()
    assert json.loads(lines[-1])["what"] == "verify FAILED"

    # the manifest itself edited (and made to match the edit): its hash no longer matches the log
    manifest = bundle / MANIFEST
    manifest.chmod(0o644)
    listed = _listed_hash(manifest, "compose/config.json")
    manifest.write_text(manifest.read_text().replace(listed, sha256_file(target)))
    with pytest.raises(EvidenceDamaged, match="the change log recorded"):
        verify_evidence(stack=str(stack.path), bundle=str(bundle))


def _listed_hash(manifest: Path, rel: str) -> str:
    for line in manifest.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name == rel:
            return digest
    raise AssertionError(f"{rel} not in {manifest}")
