"""The health report: one result per check, what it depends on, and what the run sent."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from blocks.config import ServiceConfig
from tasks.clients.docker_engine import ContainerInfo
from tasks.keys import NO_KEYS, ServiceKeys

#: ok / failing / info (does not apply here, e.g. no proxy) / suppressed (failing because a
#: parent it depends on is failing: reported, never alerted on its own)
CheckState = Literal["ok", "failing", "info", "suppressed"]


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # "<family>:<target>", stable across runs: alert state is keyed by it
    family: str
    target: str
    state: CheckState
    observed: str  # what was seen, with the value: "HTTP 500 on chat completion (12 ms)"
    next_step: str | None = None
    parents: list[str] = Field(default_factory=list)  # check ids this one depends on
    duration_ms: float = 0.0
    #: numbers for metrics, named like Prometheus base units: snapshot_age_seconds, free_bytes
    measures: dict[str, float] = Field(default_factory=dict)
    suppressed_by: str | None = None

    @property
    def failed(self) -> bool:
        return self.state in ("failing", "suppressed")


class ServiceTarget(BaseModel):
    """One configured service as the checks see it."""

    model_config = ConfigDict(frozen=True)

    name: str
    config: ServiceConfig
    in_compose: bool
    depends_on: list[str]  # compose service names
    container: ContainerInfo | None
    url: str | None
    # the name a vLLM serves by its arguments (--served-model-name, else --model; tasks/vllm_args)
    served_model: str | None = None
    # the keys its API expects (tasks/keys.py): for the clients, never in a dump or a repr
    credentials: ServiceKeys = Field(default=NO_KEYS, exclude=True, repr=False)


class HealthContext(BaseModel):
    """Read once per run, shared by every family (one compose call, one container listing)."""

    model_config = ConfigDict(frozen=True)

    stack_dir: Path
    project: str | None
    services: dict[str, ServiceTarget]
    docker_error: str | None = None  # the engine did not answer: container checks cannot run
    compose_error: str | None = None
    read_ms: float = 0.0


class Delivery(BaseModel):
    """One alert sent (or tried) to one target."""

    model_config = ConfigDict(frozen=True)

    target: str
    check: str
    event: Literal["failing", "recovered", "reminder"]
    delivered: bool
    error: str | None = None


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    stack_dir: Path
    project: str | None
    host: str
    started_at: datetime
    duration_s: float
    checks: list[CheckResult]
    deliveries: list[Delivery] = Field(default_factory=list)

    @property
    def failing(self) -> list[CheckResult]:
        """Checks failing in their own right (suppressed ones are covered by their parent)."""
        return [c for c in self.checks if c.state == "failing"]

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    def check(self, check_id: str) -> CheckResult:
        for result in self.checks:
            if result.id == check_id:
                return result
        raise KeyError(check_id)
