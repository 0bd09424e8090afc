"""A second backup of an unchanged stack stores nothing new and reads no model bytes."""

from __future__ import annotations

from pathlib import Path

from bed import RunningStack

from flows.backup import backup_stack


def test_second_backup_of_an_unchanged_stack_is_free(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    running_stack.compose("stop", "-t", "2")  # at rest: nothing writes any more
    repo = str(tmp_path / "repo")
    first = backup_stack(stack=str(running_stack.path), repo=repo)
    second = backup_stack(stack=str(running_stack.path), repo=repo)
    assert first.stats.new_objects > 0
    assert second.stats.new_objects == 0, [(p.name, p.stats.new_objects) for p in second.parts]
    assert second.stats.new_bytes == 0
    models = {p.name: p for p in second.parts}["models"]
    assert models.stats.files > 0 and models.stats.files_read == 0
    assert models.stats.reused_bytes == models.stats.bytes > 0
