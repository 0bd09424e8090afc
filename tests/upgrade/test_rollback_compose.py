"""Rollback and a compose file edited since the upgrade: refused, or a warning with --force
(#23 finding 9; the stack test in test_upgrade.py runs the refusal through the CLI)."""

from __future__ import annotations

import logging

import pytest

from sbx.errors import UpgradeRefused
from tasks.upgrade.journal import JournalEntry, Release
from tasks.upgrade.prepare import check_compose_unchanged

RECORDED = {"docker-compose.yml": "a" * 64, "compose.override.yml": "b" * 64}


def release(compose_files: dict[str, str]) -> Release:
    return Release(images={}, compose_files=compose_files, env_fingerprints={}, models={})


UPGRADE = JournalEntry(action="upgrade", services=["worker"], before=release(RECORDED))


def test_same_compose_files_roll_back_quietly(caplog: pytest.LogCaptureFixture) -> None:
    check_compose_unchanged(UPGRADE, release(dict(RECORDED)), force=False)
    assert not caplog.records


@pytest.mark.parametrize(
    "now",
    [
        {**RECORDED, "docker-compose.yml": "c" * 64},  # edited
        {"docker-compose.yml": "a" * 64},  # the override removed
        {**RECORDED, "compose.yaml": "d" * 64},  # a file added
    ],
)
def test_an_edited_compose_file_is_refused_unless_forced(
    now: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(UpgradeRefused) as caught:
        check_compose_unchanged(UPGRADE, release(now), force=False)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "--force" in message and UPGRADE.id in message
    assert "Nothing was changed" in message
    with caplog.at_level(logging.WARNING, logger="sbx.upgrade"):
        check_compose_unchanged(UPGRADE, release(now), force=True)
    assert any("--force" in r.getMessage() for r in caplog.records)
