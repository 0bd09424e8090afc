"""The error tree's contract beyond messages: errors survive pickling, which Prefect does to a
failed flow run's exception, whatever their __init__ takes."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

from sbx.errors import BackupIncomplete, ConfigError, LogRotationError, SbxError
from sbx.repository.format import Stats
from tasks.reports import BackupReport, PartSummary


def _round_trip(error: SbxError) -> SbxError:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.retryable == error.retryable
    assert copy.exit_code == error.exit_code
    return copy


def test_an_error_built_from_a_report_survives_pickling() -> None:
    report = BackupReport(
        snapshot_id="20261127T020000Z-abcdef12",
        repository="/srv/repo",
        stack_dir=Path("/srv/stack"),
        project="stack",
        started_at=datetime(2026, 11, 27, 2, tzinfo=UTC),
        stats=Stats(),
        parts=[
            PartSummary(
                name="qdrant",
                method="qdrant-snapshot",
                mode="snapshot-api",
                status="failed",
                reason="the API timed out",
                stats=Stats(),
                warnings=[],
            )
        ],
        restarted=[],
        docker=True,
    )
    copy = _round_trip(BackupIncomplete(report))
    assert isinstance(copy, BackupIncomplete)
    assert copy.report == report
    # a problem that ends its own sentence is not followed by a second full stop
    ended = report.model_copy(update={"parts": [report.parts[0].model_copy(
        update={"reason": "the API timed out. Retry later."})]})  # fmt: skip
    assert ".. " not in str(BackupIncomplete(ended))
    assert "Retry later. Fix the cause" in str(BackupIncomplete(ended))


def test_errors_keep_their_attributes_and_retry_flag_through_pickling() -> None:
    rotation = _round_trip(LogRotationError("/srv/stack/logs/a.log", "it is busy"))
    assert isinstance(rotation, LogRotationError) and rotation.path == "/srv/stack/logs/a.log"
    _round_trip(ConfigError("sbx.toml [offbox] url is empty", retryable=True))
