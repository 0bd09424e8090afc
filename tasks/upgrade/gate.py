"""The health gate of an upgrade: N consecutive passing rounds within a soak window.

A round runs the health flow's own container and service checks (tasks/health) for the changed
services only: container running and healthy, and for OpenAI services a real one-token chat
completion (the canary). A container whose restart count grows during the window fails the round
(a crash loop can look "running" between two crashes), and so does one whose image HEALTHCHECK
does not say "healthy" yet. One failing round only resets the count:
a rollback never happens on one transient failure, only when the window ends without N passes.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from tasks.health.context import read_context
from tasks.health.model import CheckResult
from tasks.health.round import run_family, suppress


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    rounds: int
    gate: str | None = None  # id of the check that failed last (e.g. "service:worker")
    detail: str | None = None


def gate_names(config: SbxConfig, compose_services: list[str]) -> set[str]:
    """The check targets (sbx service names) of compose services."""
    by_compose = {svc.compose_service: name for name, svc in config.services.items()}
    return {by_compose.get(s, s) for s in compose_services}


def gate_round(config: SbxConfig, names: set[str], restarts: dict[str, int]) -> list[CheckResult]:
    """The failing checks of one round for ``names`` (root causes only)."""
    ctx = read_context(config)
    results = run_family("containers", config, ctx, "") + run_family("services", config, ctx, "")
    failing = [r for r in suppress(results) if r.state == "failing" and r.target in names]
    for name in sorted(names):
        info = ctx.services[name].container if name in ctx.services else None
        if info is None:
            continue
        if info.health not in (None, "healthy"):  # the image's own HEALTHCHECK must agree
            failing.append(_failing(name, f"Docker health is {info.health}, not healthy"))
            continue
        first = restarts.setdefault(name, info.restart_count)
        if info.restart_count > first:
            restarted = info.restart_count - first
            failing.append(
                _failing(name, f"restarted {restarted} time(s) during the soak window (crash loop)")
            )
    return failing


def _failing(name: str, observed: str) -> CheckResult:
    return CheckResult(
        id=f"container:{name}",
        family="container",
        target=name,
        state="failing",
        observed=observed,
        next_step="Read its log: 'docker compose logs --tail 100'.",
    )


ROUND_FLOOR_S = 0.5  # the least time an HTTP answer gets, even at the window's very end


def within(config: SbxConfig, left_s: float) -> SbxConfig:
    """``config`` whose HTTP timeouts fit what is left of the soak window (at least
    ``ROUND_FLOOR_S``): a round (two answers per service, each bounded by its timeout and at worst
    twice it, tasks/clients/deadline.py) ends within about twice what is left, whatever a service
    does, instead of holding the gate a configured completion timeout past the window."""
    cap = max(ROUND_FLOOR_S, left_s / 2)
    health = config.health.model_copy(
        update={"completion_timeout_s": min(config.health.completion_timeout_s, cap)}
    )
    return config.model_copy(
        update={"probe_timeout_s": min(config.probe_timeout_s, cap), "health": health}
    )


def run_gate(config: SbxConfig, compose_services: list[str]) -> GateResult:
    """Rounds every ``interval_s`` until ``passes`` consecutive ones pass, or the window ends."""
    settings = config.upgrade
    names = gate_names(config, compose_services)
    deadline = time.monotonic() + settings.soak_window_s
    restarts: dict[str, int] = {}
    streak, rounds, last = 0, 0, None
    while True:
        rounds += 1
        failing = gate_round(within(config, deadline - time.monotonic()), names, restarts)
        if failing:
            streak, last = 0, failing[0]
        else:
            streak += 1
            if streak >= settings.passes:
                return GateResult(passed=True, rounds=rounds)
        if time.monotonic() + settings.interval_s > deadline:
            break
        time.sleep(settings.interval_s)
    if last is None:
        detail = f"{streak} of {settings.passes} passes within {settings.soak_window_s:.0f} s"
        return GateResult(passed=False, rounds=rounds, gate="soak window", detail=detail)
    return GateResult(passed=False, rounds=rounds, gate=last.id, detail=last.observed)
