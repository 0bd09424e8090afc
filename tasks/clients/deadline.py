"""One HTTP exchange bounded as a whole: connect, headers and body within one monotonic deadline.

httpx's timeouts bound each socket operation, not the answer: a server that sends its headers and
then one byte a second never trips a 3 s read timeout, and the caller waits for ever. Here the body
is streamed and the deadline is checked after every chunk it yields; each socket operation keeps
httpx's ``timeout_s`` bound, so the whole exchange ends within ``2 * timeout_s`` at worst (the last
read may start just before the deadline), whatever the server does with its body.
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class AnswerDeadline(httpx.TimeoutException):
    """The whole answer (headers and body) did not arrive before the deadline."""


def bounded_request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    timeout_s: float,
    body_limit: int | None = None,
    json: Any = None,
) -> tuple[httpx.Response, bytes]:
    """Send one request; return the response and its body (at most ``body_limit`` bytes).

    Raises :class:`AnswerDeadline` (an ``httpx.TimeoutException``) when the whole answer takes
    longer than ``timeout_s``; any other transport failure as httpx raises it.
    """
    deadline = time.monotonic() + timeout_s
    request = client.build_request(method, url, json=json, timeout=httpx.Timeout(timeout_s))
    response = client.send(request, stream=True)
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise AnswerDeadline(f"no whole answer within {timeout_s:g} s", request=request)
            chunks.append(chunk)
            size += len(chunk)
            if body_limit is not None and size >= body_limit:
                break
        if time.monotonic() > deadline:
            raise AnswerDeadline(f"no whole answer within {timeout_s:g} s", request=request)
    finally:
        response.close()
    body = b"".join(chunks)
    return response, body if body_limit is None else body[:body_limit]


def body_text(response: httpx.Response, body: bytes) -> str:
    """The body decoded as the response says (UTF-8 by default), bad bytes replaced."""
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an encoding name Python does not know
        return body.decode("utf-8", errors="replace")
