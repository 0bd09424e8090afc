"""An in-place restore into a stack missing a part's parent directory (disaster recovery)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tasks.restore.swap_journal import swap_paths


def test_a_missing_live_parent_is_made_like_the_staged_one(tmp_path: Path) -> None:
    stack, staging = tmp_path / "stack", tmp_path / "stack/.sbx/restore-x"
    (staging / "data/models").mkdir(parents=True)
    (staging / "data/models/f").write_text("m")
    os.setxattr(staging / "data", "user.kept", b"yes")
    (staging / "data").chmod(0o2751)
    if os.geteuid() == 0:
        os.chown(staging / "data", 1234, 5678)
    moves = [(staging / "data/models", stack / "data/models")]
    swap_paths(stack, moves, "test", discard=[staging])
    made, model = (stack / "data").stat(), (staging / "data").stat()
    assert stat.S_IMODE(made.st_mode) == 0o2751
    assert (made.st_uid, made.st_gid) == (model.st_uid, model.st_gid)
    assert os.getxattr(stack / "data", "user.kept") == b"yes"
    assert (stack / "data/models/f").read_text() == "m"
