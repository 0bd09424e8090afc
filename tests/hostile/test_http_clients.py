"""Every HTTP client against hostile servers: bounded time, a clear error, never a hang (#23).

The deadline is the whole answer's (connect + headers + body): a server that trickles its body a
byte at a time keeps httpx's per-read timeout happy for ever, so only a whole-answer deadline
ends the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from faults.figures import FIGURES

from sbx.errors import HttpError
from tasks.clients.health_http import BODY_LIMIT, HealthHttp
from tasks.clients.http_probe import HttpProbe
from tasks.clients.vllm_metrics import read_metrics_text

from .servers import PATHS, hostile_server

TIMEOUT_S = 0.5
BOUND_S = 2 * TIMEOUT_S + 1.0  # the whole answer's deadline, one last read, and slack for CI


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with hostile_server() as url:
        yield url


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _count(request: pytest.FixtureRequest) -> None:
    FIGURES.add(request.node.name, hostile_examples=1)


@pytest.mark.parametrize("path", PATHS)
def test_probe_get_is_bounded(base: str, path: str, request: pytest.FixtureRequest) -> None:
    _count(request)
    with HttpProbe(timeout_s=TIMEOUT_S) as probe:
        result, took = _timed(lambda: probe.get(base + path))
    assert took < BOUND_S, f"{path}: the probe took {took:.1f} s"
    if path != "/flood":  # a flood is a 200 whose body the probe stops reading
        assert not result.ok and result.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", PATHS)
def test_probe_get_json_is_bounded(base: str, path: str, request: pytest.FixtureRequest) -> None:
    _count(request)
    with HttpProbe(timeout_s=TIMEOUT_S) as probe:
        started = time.monotonic()
        with pytest.raises(HttpError) as caught:
            probe.get_json(base + path)
    took = time.monotonic() - started
    assert took < BOUND_S + (5 if path == "/flood" else 0), f"{path}: get_json took {took:.1f} s"
    assert base + path in str(caught.value)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", PATHS)
def test_health_http_is_bounded(
    base: str, path: str, method: str, request: pytest.FixtureRequest
) -> None:
    _count(request)
    with HealthHttp(timeout_s=TIMEOUT_S) as http:
        call = (
            (lambda: http.get(base + path))
            if method == "get"
            else (lambda: http.post_json(base + path, {"prompt": "hi"}))
        )
        answer, took = _timed(call)
    assert took < BOUND_S, f"{method} {path}: took {took:.1f} s"
    if path == "/flood":
        assert len(answer.text) <= BODY_LIMIT  # type: ignore[attr-defined]
    else:
        assert not answer.ok and answer.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/trickle", "/silent", "/slowheaders", "/half", "/garbage"])
def test_vllm_metrics_is_bounded(base: str, path: str, request: pytest.FixtureRequest) -> None:
    _count(request)
    metrics, took = _timed(lambda: read_metrics_text("vllm", base + path, timeout_s=TIMEOUT_S))
    assert took < BOUND_S, f"{path}: took {took:.1f} s"
    assert metrics.text is None and metrics.error  # type: ignore[attr-defined]
