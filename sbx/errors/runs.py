"""Errors that end a runbook and carry its report (the CLI prints the report, then the message).

The whole tree is drawn in ``sbx/errors/__init__.py``."""

from __future__ import annotations

from typing import Any

from sbx.errors.base import SbxError


class DamageFound(SbxError):
    """Verification found damaged or missing data."""

    def __init__(self, report: Any) -> None:
        shown = "; ".join(d.describe() for d in report.damaged[:5])
        more = f" (and {len(report.damaged) - 5} more)" if len(report.damaged) > 5 else ""
        super().__init__(
            f"Verification found {len(report.damaged)} damaged item(s): {shown}{more}. "
            "Restore from another snapshot or an off-box copy; run 'sbx backup' to store "
            "a fresh snapshot."
        )
        self.report = report


class BackupIncomplete(SbxError):
    """The snapshot was stored, but a part failed or a model checksum did not match."""

    def __init__(self, report: Any) -> None:
        super().__init__(
            f"Snapshot {report.snapshot_id} was stored, but: "
            f"{'; '.join(str(p).rstrip('.') for p in report.problems)}. "
            "Fix the cause and run 'sbx backup' again; 'sbx verify' checks what was stored."
        )
        self.report = report


class RecoverRefused(SbxError):
    """An in-place restore asked for without confirmation: nothing was changed."""

    exit_code = 2


class RecoveryFailed(SbxError):
    """The restore, a health check or the prompt suite failed; the message names each."""

    def __init__(self, report: Any) -> None:
        super().__init__(
            f"Recovery of incident {report.incident_id} is not done: "
            + "; ".join(report.problems)
            + ". Fix what is named and run 'sbx incident recover' again; 'sbx health' shows "
            "every check with its next step."
        )
        self.report = report


class HealthChecksFailed(SbxError):
    """At least one health check fails; the report names each with its next step."""

    def __init__(self, report: Any) -> None:
        shown = "; ".join(f"{c.id}: {c.observed}" for c in report.failing[:5])
        more = f" (and {len(report.failing) - 5} more)" if len(report.failing) > 5 else ""
        super().__init__(
            f"Health checks failing on {report.stack_dir}: {shown}{more}. "
            "'sbx health' shows every check with its next step."
        )
        self.report = report

    def __reduce__(self) -> tuple[type[HealthChecksFailed], tuple[Any]]:
        # Prefect pickles a failed run's exception: rebuild it from what __init__ takes
        return (type(self), (self.report,))


class LogRotationIncomplete(SbxError):
    """Some log files could not be rotated (refused or failed); the others were."""

    def __init__(self, report: Any) -> None:
        super().__init__(
            f"Log rotation of {report.stack_dir} incomplete: {'; '.join(report.problems)}. "
            "Nothing was cut from those files; fix the cause and run 'sbx logs rotate' again."
        )
        self.report = report


class DrillFailed(SbxError):
    """A restore drill failed: the snapshot did not restore, start, or hold what it recorded."""

    def __init__(self, report: Any) -> None:
        super().__init__(
            f"Drill of snapshot {report.snapshot_id} failed: {'; '.join(report.failed)}. "
            "The scratch project was torn down. Fix the cause (run 'sbx verify' for repository "
            "damage) and run 'sbx drill' again."
        )
        self.report = report


class RestoreUnhealthy(SbxError):
    """The restored stack did not become healthy; the previous data was swapped back."""
