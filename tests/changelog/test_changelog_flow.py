"""The show-changelog flow: artifact, and the head kept in a Prefect Variable outside the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.variables import Variable

from flows.changelog import show_changelog
from sbx.errors import ChangeLogDamaged
from tasks.changelog import HEAD_FILE, anchor_variable_name, append_change, log_path
from tasks.reports import artifact_key


@flow(name="test-append-changes")
def append_in_a_run(stack: str, n: int) -> None:
    for i in range(n):
        append_change(Path(stack), action="upgrade", target="worker", before=i, after=i + 1)


def test_removed_tail_is_caught_by_the_prefect_variable(
    prefect_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    append_in_a_run(str(stack), 3)
    assert str(Variable.get(anchor_variable_name(stack))).startswith("3 ")

    report = show_changelog(stack=str(stack))
    assert report.intact and report.entries == 3
    assert report.anchor == "the Prefect Variable"

    # someone removes the last entry and the head file beside it: the Variable still knows
    lines = log_path(stack).read_bytes().splitlines(keepends=True)
    log_path(stack).write_bytes(b"".join(lines[:2]))
    (stack / HEAD_FILE).unlink()
    with pytest.raises(ChangeLogDamaged, match=r"ends at seq 2 but the Prefect Variable"):
        show_changelog(stack=str(stack))


def test_the_artifact_lists_the_entries(prefect_server: str, tmp_path: Path) -> None:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    stack = tmp_path / "stack"
    stack.mkdir()
    append_change(stack, action="model-swap", target="worker", before={"model": "a/Old"},
                  after={"model": "b/New"})  # fmt: skip
    show_changelog(stack=str(stack))
    key = artifact_key("changelog", stack.name)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    markdown = str(max(found, key=lambda a: a.created or 0).data)
    assert "# Change log: 1 entries, chain intact" in markdown
    assert "| 1 |" in markdown and "| model-swap | worker | a/Old | b/New |" in markdown
