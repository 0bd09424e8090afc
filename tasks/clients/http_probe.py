"""HTTP probes over httpx: one GET with a hard timeout, answered as data, never as an exception.

A probe's outcome is an observation (status and health tables show it), so transport errors become
a :class:`ProbeResult` with ``ok=False`` and the reason; :meth:`HttpProbe.get_json` is for callers
that need the body and raises :class:`HttpError` instead.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from sbx.errors import HttpError
from tasks.clients.deadline import bounded_request

BODY_LIMIT = 1024 * 1024  # a probe wants a status or a small JSON document


class ProbeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    ok: bool
    status_code: int | None
    elapsed_ms: float
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.ok:
            return f"{self.status_code}, {self.elapsed_ms:.0f} ms"
        return self.error or f"HTTP {self.status_code}"


class HttpProbe:
    """A small HTTP client with timeouts; usable as a context manager."""

    def __init__(self, *, timeout_s: float = 3.0) -> None:
        # no proxies from the environment: probes target the box's own loopback services. Nor
        # certificate checks: a probe asks whether the proxy answers on 127.0.0.1, a name no real
        # certificate carries; the certificate is judged by `sbx health` (tasks/health/exposure.py)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            trust_env=False,
            verify=False,  # noqa: S501
        )
        self.timeout_s = timeout_s

    def get(self, url: str) -> ProbeResult:
        started = time.perf_counter()
        try:
            response, _ = bounded_request(
                self._client, "GET", url, timeout_s=self.timeout_s, body_limit=BODY_LIMIT
            )
        except httpx.TimeoutException:
            return self._failed(url, started, f"no answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return self._failed(url, started, _reason(exc))
        elapsed = (time.perf_counter() - started) * 1000
        ok = response.is_success
        return ProbeResult(
            url=url,
            ok=ok,
            status_code=response.status_code,
            elapsed_ms=elapsed,
            error=None if ok else f"HTTP {response.status_code}",
        )

    def get_json(self, url: str) -> Any:
        try:
            response, data = bounded_request(self._client, "GET", url, timeout_s=self.timeout_s)
            response.raise_for_status()
            return json.loads(data)
        except httpx.HTTPStatusError as exc:
            raise HttpError(
                f"{url} answered HTTP {exc.response.status_code}. Check the service's logs.",
                retryable=exc.response.status_code >= 500,
            ) from exc
        except httpx.HTTPError as exc:
            raise HttpError(f"{url} could not be reached ({_reason(exc)}). Is it running?") from exc
        except ValueError as exc:
            raise HttpError(f"{url} did not answer JSON ({exc}).", retryable=False) from exc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpProbe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _failed(self, url: str, started: float, error: str) -> ProbeResult:
        elapsed = (time.perf_counter() - started) * 1000
        return ProbeResult(url=url, ok=False, status_code=None, elapsed_ms=elapsed, error=error)


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
