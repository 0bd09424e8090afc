"""Fixtures of the correctness harness: per-example directories, tmpfs mounts, the counts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed.services import require_service
from faults.figures import FIGURES, report_figures

from harness.budget import SEED
from harness.kinds import off
from harness.roundtrip import can_mount_tmpfs


class Examples:
    """Counts the examples a property ran; the total goes to the fault figures."""

    def __init__(self) -> None:
        self.count = 0

    def tick(self) -> None:
        self.count += 1


@pytest.fixture
def examples(request: pytest.FixtureRequest) -> Iterator[Examples]:
    counter = Examples()
    yield counter
    FIGURES.add(request.node.name, harness_examples=counter.count)


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        require_service("root", "the harness sets owners, trusted.* xattrs and devices as root")


@pytest.fixture
def scratch(tmp_path: Path, as_root: None) -> Iterator[Path]:
    """A directory for per-example work: :func:`fresh` makes one inside it per example."""
    yield tmp_path


@pytest.fixture
def mounts(scratch: Path) -> Path:
    """``scratch`` where tmpfs can be mounted (skipped, or failed in CI, where not)."""
    why = can_mount_tmpfs(scratch)
    if why is not None:
        require_service("tmpfs", why)
    return scratch


def fresh(parent: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="ex-", dir=parent))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.harness_examples:
        return
    report_figures(terminalreporter)
    terminalreporter.write_line(f"harness seed: {SEED} (replay: SBX_HARNESS_SEED={SEED})")
    if off():
        terminalreporter.write_line(f"harness dimensions OFF: {', '.join(off())}")
