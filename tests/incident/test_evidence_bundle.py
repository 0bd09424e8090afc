"""Evidence bundles on disk (manifest, seal, custody, check), redaction, and what unfreeze
reads back from an incident's actions: pure functions, no services."""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tasks.incident.bundle import (
    CUSTODY,
    MANIFEST,
    append_custody,
    copy_tree,
    new_bundle_dir,
    seal,
    verify_bundle,
    write_manifest,
)
from tasks.incident.evidence import REDACTED, redact_compose, redact_env_list
from tasks.incident.exposure import FrozenContainer, frozen_containers
from tasks.incident.record import IncidentAction


def _bundle(tmp_path: Path) -> Path:
    bundle = new_bundle_dir(tmp_path / "evidence", datetime(2026, 11, 27, 3, 15, tzinfo=UTC))
    (bundle / "containers").mkdir()
    (bundle / "containers" / "worker.log").write_bytes(b"2026-11-27T03:00:00Z started\n" * 50)
    (bundle / "containers" / "worker.inspect.json").write_text('{"Id": "abc"}\n')
    (bundle / "logs" / "proxy").mkdir(parents=True)
    (bundle / "logs" / "proxy" / "access.log.1").write_bytes(b"\x00binary\xffbytes")
    (bundle / "empty.txt").write_bytes(b"")
    append_custody(bundle, "preserve started")
    write_manifest(bundle)
    append_custody(bundle, "sealed")
    seal(bundle)
    return bundle


def _flip_one_byte(path: Path) -> bytes:
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(bytes([original[0] ^ 1]) + original[1:] if original else b"x")
    return original


def test_new_bundle_names_are_utc_times_and_never_reused(tmp_path: Path) -> None:
    when = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)
    first = new_bundle_dir(tmp_path, when)
    second = new_bundle_dir(tmp_path, when)
    assert (first.name, second.name) == ("20261127T031500Z", "20261127T031500Z-1")


def test_sealed_bundle_verifies_and_sha256sum_agrees(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    check = verify_bundle(bundle)
    assert check.problems == [] and check.files == 4
    # the manifest is in sha256sum's format: the bundle checks without sbx
    done = subprocess.run(
        ["sha256sum", "--check", "--strict", MANIFEST], cwd=bundle, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for path in [bundle, *bundle.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o222 == 0, f"{path} is writable ({oct(mode)})"
    lines = [json.loads(x) for x in (bundle / CUSTODY).read_text().splitlines()]
    assert [x["what"] for x in lines] == ["preserve started", "sealed"]
    assert all(x["who"] and x["time"] for x in lines)


def test_one_changed_byte_in_any_file_is_named(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    listed = [
        p for p in sorted(bundle.rglob("*")) if p.is_file() and p.name not in (MANIFEST, CUSTODY)
    ]
    assert len(listed) == 4
    for path in listed:
        rel = path.relative_to(bundle).as_posix()
        original = _flip_one_byte(path)
        assert verify_bundle(bundle).problems == [f"changed {rel}"]
        path.write_bytes(original)
    assert verify_bundle(bundle).problems == []


def test_missing_and_extra_files_are_named(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "containers").chmod(0o755)
    (bundle / "containers" / "worker.log").unlink()
    (bundle / "containers" / "planted.log").write_text("not from preserve\n")
    (bundle / "containers" / "link").symlink_to("worker.inspect.json")
    check = verify_bundle(bundle)
    assert check.missing == ["containers/worker.log"]
    assert check.extra == ["containers/link", "containers/planted.log"]
    assert check.changed == []


def test_a_file_swapped_for_a_link_to_the_same_bytes_is_changed(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "containers").chmod(0o755)
    target = tmp_path / "copy.json"
    target.write_text('{"Id": "abc"}\n')
    (bundle / "containers" / "worker.inspect.json").unlink()
    (bundle / "containers" / "worker.inspect.json").symlink_to(target)
    assert verify_bundle(bundle).changed == ["containers/worker.inspect.json"]


def test_copy_tree_takes_rotated_files_and_leaves_links(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "proxy").mkdir(parents=True)
    (logs / "proxy" / "access.log").write_text("live\n")
    (logs / "proxy" / "access.log.1").write_text("rotated\n")
    (logs / "proxy" / "access.log.2.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    (logs / "outside").symlink_to("/etc")
    (logs / "passwd").symlink_to("/etc/passwd")
    files, size, notes, unreadable = copy_tree(logs, tmp_path / "copy")
    assert unreadable == []
    assert files == 3 and size == len("live\n") + len("rotated\n") + 4
    assert (tmp_path / "copy" / "proxy" / "access.log.1").read_text() == "rotated\n"
    assert not (tmp_path / "copy" / "passwd").exists()
    assert not (tmp_path / "copy" / "outside").exists()
    assert sorted(n.split(":")[0] for n in notes) == ["outside", "passwd"]
    assert (logs / "proxy" / "access.log").exists()  # copied, not moved


def test_environment_values_are_redacted() -> None:
    assert redact_env_list(["API_KEY=s3cret", "PATH=/bin", "FLAG"]) == [
        f"API_KEY={REDACTED}",
        f"PATH={REDACTED}",
        "FLAG",
    ]
    resolved = {
        "name": "p",
        "services": {
            "worker": {"image": "x", "environment": {"TOKEN": "s3cret", "EMPTY": None}},
            "agent": {"environment": ["A=s3cret"]},
            "plain": {"image": "y"},
        },
    }
    redacted = redact_compose(resolved)
    assert "s3cret" not in json.dumps(redacted)
    assert redacted["services"]["worker"]["environment"] == {"TOKEN": REDACTED, "EMPTY": REDACTED}
    assert redacted["services"]["plain"] == {"image": "y"}
    assert resolved["services"]["worker"]["environment"]["TOKEN"] == "s3cret"  # not mutated


def _action(step: str, ok: bool = True, **details: object) -> IncidentAction:
    return IncidentAction(at=datetime.now(UTC), step=step, summary=step, ok=ok, details=details)


def test_unfreeze_starts_what_freezes_stopped_since_the_last_unfreeze() -> None:
    proxy = FrozenContainer(service="proxy", compose_service="proxy", container_id="p1", name="px")
    agent = FrozenContainer(service="a", compose_service="a", container_id="a1", name="ag")
    dump = [proxy.model_dump()]
    actions = [
        _action("freeze", stopped=dump),
        _action("freeze", stopped=[], already_stopped=["px"]),  # a second freeze: idempotent
    ]
    assert frozen_containers(actions) == [proxy]
    actions.append(_action("unfreeze", ok=False))  # refused: nothing started
    assert frozen_containers(actions) == [proxy]
    actions.append(_action("unfreeze", started=["px"], started_ids=["p1"]))
    assert frozen_containers(actions) == []
    actions.append(_action("freeze", stopped=[agent.model_dump(), proxy.model_dump()]))
    assert frozen_containers(actions) == [agent, proxy]
