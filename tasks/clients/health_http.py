"""HTTP for health checks over httpx: GET and POST with per-request timeouts, answered as data.

Unlike :mod:`tasks.clients.http_probe` (a status code is all ``sbx status`` needs), health checks
read bodies: a model list, a completion, a collection list, a login page. Every outcome, a
transport error included, is an :class:`HttpAnswer`; nothing here raises for a bad answer.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from tasks.clients.deadline import body_text, bounded_request

BODY_LIMIT = 64 * 1024  # a health answer is small; never hold a huge page in a report


class HttpAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    status_code: int | None
    elapsed_ms: float
    text: str = ""
    error: str | None = None  # transport failure ("connection refused", "no answer within 3 s")

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and self.status_code < 300

    def body(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def summary(self) -> str:
        if self.error:
            return self.error
        detail = ""
        body = self.body()
        if not self.ok and isinstance(body, dict) and isinstance(body.get("message"), str):
            detail = f": {body['message'][:160]}"
        return f"HTTP {self.status_code}{detail}"


class HealthHttp:
    """A small HTTP client for the box's own services; usable as a context manager."""

    def __init__(self, *, timeout_s: float = 3.0) -> None:
        # no proxies from the environment: the checks target the box's own loopback services
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False)
        self.timeout_s = timeout_s

    def get(
        self, url: str, *, timeout_s: float | None = None, key: SecretStr | None = None
    ) -> HttpAnswer:
        return self._request("GET", url, None, timeout_s, key)

    def post_json(
        self, url: str, body: Any, *, timeout_s: float | None = None, key: SecretStr | None = None
    ) -> HttpAnswer:
        return self._request("POST", url, body, timeout_s, key)

    def _request(
        self, method: str, url: str, body: Any, timeout_s: float | None, key: SecretStr | None
    ) -> HttpAnswer:
        limit = timeout_s or self.timeout_s
        # a bearer token is what vLLM's --api-key asks for, and one of the two forms Qdrant takes
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else None
        started = time.perf_counter()
        try:
            # the deadline covers the whole answer: a server trickling its body cannot hold us
            response, data = bounded_request(
                self._client, method, url, timeout_s=limit, body_limit=BODY_LIMIT, json=body,
                headers=headers,
            )  # fmt: skip
        except httpx.TimeoutException:
            return _failed(url, started, f"no answer within {limit:g} s")
        except httpx.ConnectError:
            return _failed(url, started, "connection refused")
        except httpx.HTTPError as exc:
            return _failed(url, started, f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
        return HttpAnswer(
            url=url,
            status_code=response.status_code,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            text=body_text(response, data),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HealthHttp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _failed(url: str, started: float, error: str) -> HttpAnswer:
    elapsed = (time.perf_counter() - started) * 1000
    return HttpAnswer(url=url, status_code=None, elapsed_ms=elapsed, error=error)
