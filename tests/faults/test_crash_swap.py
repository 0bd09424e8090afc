"""The in-place restore's swap killed after each of its renames: the next sbx command finds the
stack's previous data whole (SIGKILL), or the swap ran to its end first (SIGTERM waits for it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.restore.swap_journal import JOURNAL, recover_interrupted_swap

from .crash_helpers import TrialServer, tree_digest
from .figures import FaultFigures

LIVE = ["data/qdrant", "notes", "agents"]  # agents only exists in the restored data


def _stack(root: Path) -> tuple[Path, Path, list[list[str]]]:
    """A stack with old data, staged new data, and the renames swap_in makes (in its order)."""
    stack, staging = root / "stack", root / "stack" / ".sbx" / "restore-x"
    for rel in ("data/qdrant", "notes"):
        (stack / rel).mkdir(parents=True)
        (stack / rel / "old.txt").write_text(f"old {rel}\n")
    for rel in LIVE:
        (staging / rel / "deeper").mkdir(parents=True)
        (staging / rel / "deeper" / "new.txt").write_text(f"new {rel}\n")
    moves = []
    for rel in LIVE:
        if (stack / rel).exists():
            # as swap_in does: into the restore's own directory (nested, made by the swap)
            moves.append([str(stack / rel), str(stack / ".sbx" / "restores" / "t" / rel)])
        moves.append([str(staging / rel), str(stack / rel)])
    return stack, staging, moves


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TrialServer]:
    trial_server = TrialServer(dict(os.environ), tmp_path, preload=("tasks.restore.swap_journal",))
    yield trial_server
    trial_server.close()


def test_a_swap_killed_after_any_rename_converges_on_old_or_new(
    server: TrialServer,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    old_stack, _, _ = _stack(tmp_path / "old")
    old = tree_digest(old_stack, LIVE)
    new_stack, _, new_moves = _stack(tmp_path / "new")
    for src, dst in new_moves:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        Path(src).rename(dst)
    new = tree_digest(new_stack, LIVE)
    trials = mixed = 0
    for sig in (signal.SIGKILL, signal.SIGTERM):
        for cut in range(len(new_moves)):
            stack, staging, moves = _stack(tmp_path / f"{sig.name}-{cut}")
            child = server.start(
                "swap-cut", stack=str(stack), moves=moves, staging=str(staging), cut=cut, sig=sig
            )
            assert child.wait() == -sig, (sig.name, cut, child.tail())
            trials += 1
            if sig is signal.SIGKILL:
                assert (stack / JOURNAL).is_file()  # left for the next command
                assert recover_interrupted_swap(stack) is not None
                assert not staging.exists()  # the staged copy is discarded with the journal
                expected = old
            else:  # the renames ran to their end before the signal was let in
                expected = new
            found = tree_digest(stack, LIVE)
            mixed += found not in (old, new)
            assert found == expected, (sig.name, cut, sorted(p.name for p in stack.iterdir()))
            assert not (stack / JOURNAL).exists()
            assert recover_interrupted_swap(stack) is None  # converged: nothing more to do
    fault_figures.add(request.node.name, trials_run=trials, partial_snapshots=0)
    assert mixed == 0


def test_a_part_on_another_file_system_is_refused_before_any_rename(tmp_path: Path) -> None:
    from sbx.errors import RestoreRefused
    from tasks.restore.swap_journal import swap_paths

    from .env_helpers import tmpfs

    stack = tmp_path / "stack"
    (stack / ".sbx" / "restore-x" / "data").mkdir(parents=True)
    (stack / ".sbx" / "restore-x" / "data" / "new.bin").write_bytes(b"new")
    with tmpfs(stack / "data", 4) as mount:
        (mount / "old.bin").write_bytes(b"old")
        moves = [
            (mount, stack / ".sbx" / "restores" / "t" / "data"),  # live aside: across mounts
            (stack / ".sbx" / "restore-x" / "data", mount),
        ]
        with pytest.raises(RestoreRefused, match="on another file system"):
            swap_paths(stack, moves, "restore x", [])
        assert (mount / "old.bin").read_bytes() == b"old"  # nothing moved, no journal left
        assert not (stack / JOURNAL).exists()
