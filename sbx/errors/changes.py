"""Errors of the runbooks that change the box: upgrades, model swaps, the change log, incidents.

The whole tree is drawn in ``sbx/errors/__init__.py``."""

from __future__ import annotations

from sbx.errors.base import SbxError


class UpgradeError(SbxError):
    """An upgrade or rollback (flows/upgrade.py) did not end on the release it aimed for."""


class UpgradeRefused(UpgradeError):
    """The upgrade did not start: nothing was changed (a rollback image missing, no registry
    digest to return to, another upgrade still open)."""

    exit_code = 2


class RolledBack(UpgradeError):
    """The new release failed its gate; the recorded release runs again and passed the gate."""

    def __init__(self, gate: str, detail: str, entry: str, data: str | None = None) -> None:
        super().__init__(
            f"rolled back: {gate} failed ({detail}). The previous release runs again and passed "
            f"the same gate (journal entry {entry})"
            + (f"; {data}" if data else "")
            + ". Read the new image's log before retrying."
        )


class RollbackFailed(UpgradeError):
    """The new release failed and the recorded one failed its gate too: the box needs a person."""

    def __init__(self, gate: str, detail: str, entry: str) -> None:
        super().__init__(
            f"rollback failed: after the upgrade failed, the previous release did not pass "
            f"{gate} either ({detail}); journal entry {entry} stays open. Check 'sbx status' and "
            "'docker compose logs', then run 'sbx rollback' once the cause is fixed."
        )


class ChangeLogDamaged(SbxError):
    """The change log's hash chain is broken: an entry was edited, removed, reordered or cut."""

    def __init__(self, description: str) -> None:
        super().__init__(
            f"Change log damaged: {description} Entries from there on cannot be trusted; compare "
            "with the Prefect run history and a backup's copy of .sbx/changelog.jsonl."
        )


class ModelSwapRefused(SbxError):
    """A model swap refused before anything changed (the capacity preflight said no)."""

    def __init__(self, service: str, model: str, detail: str) -> None:
        super().__init__(
            f"Model swap of {service} to {model} refused, nothing was changed: {detail}"
        )


class ModelSwapBadService(ModelSwapRefused):
    """``--service`` names no service whose env file a swap could edit (exit 2)."""

    exit_code = 2


class ModelSwapRolledBack(SbxError):
    """A model swap whose new model failed; the previous env file and model were restored."""

    def __init__(self, service: str, model: str, reason: str) -> None:
        super().__init__(
            f"Model swap of {service} to {model} rolled back: {reason}. The previous env file "
            f"is back and {service} was restarted on it; see the run's artifact."
        )


class FreezeIncomplete(SbxError):
    """``sbx incident freeze`` could not stop every exposure, or a port is still published
    beyond loopback afterwards: the box may still be reachable from outside."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "Freeze incomplete, the box may still be reachable: "
            + "; ".join(problems)
            + ". Stop or unpublish what is named by hand (e.g. 'docker stop NAME', or bind its "
            "ports to 127.0.0.1 in the compose file), then run 'sbx incident freeze' again."
        )
        self.problems = problems

    def __reduce__(self) -> tuple[type[FreezeIncomplete], tuple[list[str]]]:
        return (type(self), (self.problems,))


class UnfreezeRefused(SbxError):
    """``sbx incident unfreeze`` was not confirmed: nothing was started."""

    exit_code = 2

    def __init__(self, how: str) -> None:
        super().__init__(
            f"Unfreeze refused ({how}); nothing was started. Unfreezing exposes the box again: "
            "run 'sbx incident unfreeze --yes' once containment is done, or confirm the paused "
            "run's form in the Prefect UI."
        )


class EvidenceDamaged(SbxError):
    """An evidence bundle does not match its manifest, or the manifest not its change-log hash."""

    def __init__(self, bundle: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:20]) + (
            f"; … {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        super().__init__(
            f"Evidence bundle {bundle} does not verify: {shown}. Do not use it as it is; "
            "compare with a copy made earlier (off-box) and keep this one untouched for review."
        )
        self.bundle = bundle
        self.problems = problems

    def __reduce__(self) -> tuple[type[EvidenceDamaged], tuple[str, list[str]]]:
        return (type(self), (self.bundle, self.problems))


class EvidenceIncomplete(SbxError):
    """An evidence bundle was written and sealed, but a source could not be collected."""

    def __init__(self, bundle: str, problems: list[str]) -> None:
        super().__init__(
            f"Evidence bundle {bundle} was sealed without: {'; '.join(problems)}. What it holds "
            "verifies; collect the rest by hand or fix the cause and run 'sbx incident "
            "preserve' again (a new bundle) before anything is restarted."
        )
        self.bundle = bundle
        self.problems = problems

    def __reduce__(self) -> tuple[type[EvidenceIncomplete], tuple[str, list[str]]]:
        return (type(self), (self.bundle, self.problems))


class ContainRefused(SbxError):
    """``sbx incident contain`` refused before changing anything (a key name that is not in the
    keys file, a service without a recorded clean digest, no saved blast-radius report)."""

    exit_code = 2

    def __init__(self, detail: str) -> None:
        super().__init__(f"Containment refused, nothing was changed: {detail}")


class ReportOutRefused(SbxError):
    """``sbx incident report --out PATH`` where PATH cannot be the report file (a directory)."""

    exit_code = 2

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"Cannot write the incident report to {path}: it is a directory. Nothing was written. "
            f"Give a file path, e.g. --out {path.rstrip('/')}/report.md."
        )

    def __reduce__(self) -> tuple[type[ReportOutRefused], tuple[str]]:
        return (type(self), (self.path,))
