"""Every drawn tree survives backup → verify → restore as ``rsync -aHAXS`` keeps it (#18).

The tree, the repository and the target are all on the test's disk here; test_filesystems.py
moves them onto other file systems.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given

from harness.budget import bounded
from harness.conftest import Examples, fresh, remove
from harness.roundtrip import Places, trial
from harness.trees import TreeSpec, trees


@bounded(60)
@given(spec=trees())
def test_any_tree_restores_as_rsync_copies_it(
    spec: TreeSpec, scratch: Path, examples: Examples
) -> None:
    examples.tick()
    work = fresh(scratch)
    try:
        places = Places(work / "src", work / "repo", work / "target", work / "reference")
        places.source.mkdir()
        trial(spec, places)
    finally:
        remove(work)
