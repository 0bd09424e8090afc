"""A planned check (id, parents, the function that observes) and running one, timed and safe."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.health.model import CheckResult, CheckState


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; :func:`run_check` adds identity and timing."""

    state: CheckState
    observed: str
    next_step: str | None = None
    measures: dict[str, float] = field(default_factory=dict)


def ok(observed: str, **measures: float) -> Outcome:
    return Outcome("ok", observed, measures=measures)


def failing(observed: str, next_step: str, **measures: float) -> Outcome:
    return Outcome("failing", observed, next_step, measures=measures)


def info(observed: str, **measures: float) -> Outcome:
    return Outcome("info", observed, measures=measures)


@dataclass(frozen=True)
class Check:
    family: str
    target: str
    observe: Callable[[], Outcome]
    parents: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.family}:{self.target}"


@dataclass(frozen=True)
class MultiCheck:
    """One observation that yields a check per target (one NVML read for every GPU)."""

    family: str
    observe: Callable[[], list[tuple[str, Outcome]]]
    crash_target: str  # the target a crashed observation is reported under


def _crashed(exc: Exception) -> Outcome:
    return failing(
        f"the check itself failed: {type(exc).__name__}: {exc}",
        "Run 'sbx health' by hand to see it; report it if it persists.",
    )


def _result(
    family: str, target: str, outcome: Outcome, started: float, parents: tuple[str, ...] = ()
) -> CheckResult:
    return CheckResult(
        id=f"{family}:{target}",
        family=family,
        target=target,
        state=outcome.state,
        observed=outcome.observed,
        next_step=outcome.next_step,
        parents=list(parents),
        duration_ms=(time.perf_counter() - started) * 1000,
        measures=outcome.measures,
    )


def run_check(check: Check) -> CheckResult:
    """Run one check; an unexpected exception is a failing result, never a crashed run."""
    started = time.perf_counter()
    try:
        outcome = check.observe()
    except Exception as exc:  # a bug or an odd answer in one check must not hide the others
        outcome = _crashed(exc)
    return _result(check.family, check.target, outcome, started, check.parents)


def run_any(check: Check | MultiCheck) -> list[CheckResult]:
    if isinstance(check, Check):
        return [run_check(check)]
    started = time.perf_counter()
    try:
        outcomes = check.observe()
    except Exception as exc:
        outcomes = [(check.crash_target, _crashed(exc))]
    return [_result(check.family, target, outcome, started) for target, outcome in outcomes]
