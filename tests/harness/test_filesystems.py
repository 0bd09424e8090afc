"""The same trials across file systems (#18): a restore must not assume that the repository,
the target and its staging share a device, nor that the target is not a mount point.

Pairs: the repository on a tmpfs and the target on the disk; the repository on the disk and
the target on a tmpfs; the target itself the (empty) root of a tmpfs, as when a new disk is
mounted for a disaster recovery. The tree is on the disk throughout.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given

from harness.budget import bounded
from harness.conftest import Examples, fresh, remove
from harness.roundtrip import Places, tmpfs, trial
from harness.trees import TreeSpec, trees


@bounded(15)
@given(spec=trees())
def test_repository_on_tmpfs_target_on_disk(
    spec: TreeSpec, mounts: Path, examples: Examples
) -> None:
    examples.tick()
    _trial_with_a_tmpfs(spec, mounts, repo_on_tmpfs=True)


@bounded(15)
@given(spec=trees())
def test_repository_on_disk_target_on_tmpfs(
    spec: TreeSpec, mounts: Path, examples: Examples
) -> None:
    examples.tick()
    _trial_with_a_tmpfs(spec, mounts, repo_on_tmpfs=False)


@bounded(15)
@given(spec=trees())
def test_target_is_an_empty_mount_point(spec: TreeSpec, mounts: Path, examples: Examples) -> None:
    examples.tick()
    work = fresh(mounts)
    try:
        # the reference on a tmpfs too: the same file system type as the target
        with tmpfs(work / "target") as target, tmpfs(work / "ref") as ref:
            places = Places(work / "src", work / "repo", target, ref / "reference")
            places.source.mkdir()
            trial(spec, places)
    finally:
        remove(work)


def _trial_with_a_tmpfs(spec: TreeSpec, mounts: Path, *, repo_on_tmpfs: bool) -> None:
    """One trial with the repository, or the target and its reference, on a fresh tmpfs."""
    work = fresh(mounts)
    try:
        with tmpfs(work / "mnt") as mnt:
            repo_fs, target_fs = (mnt, work) if repo_on_tmpfs else (work, mnt)
            places = Places(
                work / "src", repo_fs / "repo", target_fs / "target", target_fs / "reference"
            )
            places.source.mkdir()
            trial(spec, places)
    finally:
        remove(work)
