"""The rollback survives the failure that causes it (#23 finding 1): a `.sbx` that fills up
during the gate, an exception in the gate, a dead Docker socket.

Compose, Docker and the change log are replaced by recorders (tests/upgrade/test_upgrade.py
runs the real thing); the journal, its reserved room and the pins are the real files on a real
4 MiB tmpfs mounted as the stack's `.sbx`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults.env_helpers import fill, tmpfs

from blocks.config import SbxConfig
from sbx import stopping
from sbx.errors import DockerUnavailable, RolledBack
from sbx.stopping import Terminated, stopped_line
from tasks.upgrade import steps
from tasks.upgrade.gate import GateResult
from tasks.upgrade.journal import (
    RESERVE,
    JournalEntry,
    Release,
    ServiceImage,
    history,
    journal_dir,
    read_open,
    read_pins,
    reserve_space,
    save_open,
    write_pins,
)

OLD = "127.0.0.1:5000/worker@sha256:" + "a" * 64
NEW = "127.0.0.1:5000/worker@sha256:" + "b" * 64


def image(digest: str) -> ServiceImage:
    return ServiceImage(service="worker", image_ref="127.0.0.1:5000/worker:latest", digest=digest)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / ".sbx", 4):
        yield tmp_path


@pytest.fixture
def switches(stack: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Every switch_images call's images; the pins are really written, as compose would read."""
    calls: list[dict[str, str]] = []

    def switch(config: SbxConfig, project: str, images: dict[str, str], **_: Any) -> None:
        write_pins(config.stack_dir, images)
        calls.append(images)

    monkeypatch.setattr(steps, "switch_images", switch)
    monkeypatch.setattr(steps, "record_change", lambda *a, **k: None)
    monkeypatch.setattr(steps, "connect", contextlib.nullcontext)
    monkeypatch.setattr(steps, "retag_local", lambda *a, **k: None)
    return calls


def open_entry(stack: Path) -> JournalEntry:
    images = {"worker": image(OLD)}
    before = Release(images=images, compose_files={}, env_fingerprints={}, models={})
    entry = JournalEntry(
        action="upgrade", services=["worker"], before=before, target={"worker": image(NEW)}
    )
    reserve_space(stack)  # as flows/upgrade.py does before the entry opens
    return save_open(stack, entry)


def gate_that(failure: str, stack: Path) -> Any:
    """A gate that fails the first time (the new release) in the way named, then passes."""
    calls: list[int] = []

    def gate(config: SbxConfig, services: list[str]) -> GateResult:
        calls.append(1)
        if len(calls) > 1:
            return GateResult(passed=True, rounds=1)
        if failure == "disk full":  # the health rounds' own writes fill .sbx
            fill(stack / ".sbx" / "filler", 0)
            with (stack / ".sbx" / "last").open("wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
                    os.fsync(out.fileno())
        if failure == "docker gone":
            raise DockerUnavailable("/var/run/docker.sock", "connection refused")
        if failure == "SIGTERM":  # as sbx/stopping.py raises it in the main thread
            raise Terminated()
        raise KeyError("a bug in the gate")

    return gate


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        ("disk full", "No space left on device"),
        ("docker gone", "connection refused"),
        ("a bug", "KeyError"),
    ],
)
def test_the_recorded_release_comes_back(
    stack: Path,
    switches: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    said: str,
) -> None:
    monkeypatch.setattr(steps, "run_gate", gate_that(failure, stack))
    entry = open_entry(stack)
    with pytest.raises(RolledBack) as caught:
        steps.apply_target(SbxConfig(stack_dir=stack), "p", entry)
    message = str(caught.value)
    assert message.startswith("rolled back:") and said in message and "\n" not in message
    assert switches == [{"worker": NEW}, {"worker": OLD}]  # switched, then back
    assert read_pins(stack) == {"worker": OLD}  # what compose starts from now on
    if failure == "disk full":  # room was found: the entry is closed, nothing left open
        assert any(e.id == entry.id and e.state == "rolled-back" for e in history(stack)), (
            "the journal could not record the rollback"
        )
    assert read_open(stack) is None
    assert not (journal_dir(stack) / RESERVE).exists()


def test_a_sigterm_in_the_gate_rolls_back_first_then_stops(
    stack: Path, switches: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """#23 finding 2: SIGTERM mid-gate left the new release live; now the recorded release comes
    back before the stop goes on (exit 143, the rollback named in the stop line)."""
    monkeypatch.setattr(steps, "run_gate", gate_that("SIGTERM", stack))
    monkeypatch.setattr(stopping, "_undone", [])  # the stop line's list is per process
    entry = open_entry(stack)
    with pytest.raises(Terminated):
        steps.apply_target(SbxConfig(stack_dir=stack), "p", entry)
    assert switches == [{"worker": NEW}, {"worker": OLD}]  # switched, then back
    assert read_pins(stack) == {"worker": OLD}
    assert any(e.id == entry.id and e.state == "rolled-back" for e in history(stack))
    assert read_open(stack) is None
    assert f"upgrade {entry.id} rolled back" in stopped_line("sbx upgrade")


def test_no_room_for_the_reserve_refuses_before_anything_changes(stack: Path) -> None:
    fill(stack / ".sbx" / "filler", 0)
    with pytest.raises(OSError) as caught:
        reserve_space(stack)
    assert caught.value.errno == errno.ENOSPC
    assert not (journal_dir(stack) / RESERVE).exists()
