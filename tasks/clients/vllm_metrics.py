"""vLLM's Prometheus ``/metrics``, read over httpx: how many requests a serving engine runs now.

The GPU checks use it to tell a busy GPU from a stuck one (utilisation pegged while no request
runs). An answer that cannot be had is data (:class:`ServingLoad` with the reason), never an
exception: the check then says it could not decide.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict

from tasks.clients.deadline import body_text, bounded_request

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"


class ServingLoad(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    url: str | None
    requests_running: float | None = None
    requests_waiting: float | None = None
    error: str | None = None  # why the numbers are unknown

    @property
    def known(self) -> bool:
        return self.requests_running is not None


def read_serving_load(service: str, base_url: str | None, *, timeout_s: float) -> ServingLoad:
    """GET ``<base_url>/metrics`` and sum vLLM's running/waiting request gauges."""
    metrics = read_metrics_text(service, base_url, timeout_s=timeout_s)
    url = metrics.url
    if metrics.text is None:
        return ServingLoad(service=service, url=url, error=metrics.error)
    running = metric_sum(metrics.text, RUNNING)
    if running is None:
        return ServingLoad(service=service, url=url, error=f"no {RUNNING} in its /metrics")
    waiting = metric_sum(metrics.text, WAITING)
    return ServingLoad(service=service, url=url, requests_running=running, requests_waiting=waiting)


def metric_sum(text: str, name: str) -> float | None:
    """Sum of every sample of ``name`` (all label sets) in Prometheus text; None if absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        if "{" in line:  # labels may hold spaces: the value follows the closing brace
            metric, value = line[: line.index("{")], line.rsplit("}", 1)[1]
        else:
            metric, _, value = line.partition(" ")
        if metric != name:
            continue  # another metric sharing the prefix
        try:
            total += float(value.split()[0])
        except (IndexError, ValueError):
            continue
        seen = True
    return total if seen else None


class MetricsText(BaseModel):
    """A service's whole ``/metrics`` answer as it was (for evidence), or why there is none."""

    model_config = ConfigDict(frozen=True)

    service: str
    url: str | None
    text: str | None = None
    error: str | None = None


def read_metrics_text(service: str, base_url: str | None, *, timeout_s: float) -> MetricsText:
    """GET ``<base_url>/metrics`` and keep the body as it came; a failure is data, not raised."""
    if base_url is None:
        return MetricsText(service=service, url=None, error="no URL (container not running?)")
    url = base_url.rstrip("/") + "/metrics"
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False) as client:
            response, data = bounded_request(client, "GET", url, timeout_s=timeout_s)
    except httpx.HTTPError as exc:
        return MetricsText(service=service, url=url, error=f"no answer ({type(exc).__name__})")
    if not response.is_success:
        return MetricsText(service=service, url=url, error=f"HTTP {response.status_code}")
    return MetricsText(service=service, url=url, text=body_text(response, data))
