"""One HTTP exchange bounded as a whole: connect, headers and body within one monotonic deadline.

httpx's timeouts bound each socket operation, not the answer: a server that sends its headers and
then one byte a second never trips a 3 s read timeout, and the caller waits for ever. Here the body
is streamed and the deadline is checked after every chunk it yields, and the headers are awaited
for ``timeout_s`` at most (a send thread abandoned at the deadline); each socket operation keeps
httpx's ``timeout_s`` bound, so the whole exchange ends within ``2 * timeout_s`` at worst (the last
read may start just before the deadline), whatever the server does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, bytes]:
    """Send one request; return the response and its body (at most ``body_limit`` bytes).

    Raises :class:`AnswerDeadline` (an ``httpx.TimeoutException``) when the whole answer takes
    longer than ``timeout_s``; any other transport failure as httpx raises it.
    """
    deadline = time.monotonic() + timeout_s
    request = client.build_request(
        method, url, json=json, headers=headers, timeout=httpx.Timeout(timeout_s)
    )
    response = _headers_within(client, request, timeout_s)
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


@contextmanager
def paced_stream(
    client: httpx.Client, method: str, url: str, *, window_s: float, min_bytes: int
) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
    """A download too long for one deadline (a snapshot of many GiB): the headers within
    ``window_s``, then the body's chunks as they come, as long as at least ``min_bytes`` arrive
    in every ``window_s``; else :class:`AnswerDeadline`. Each read keeps httpx's ``window_s``
    bound, so a trickling server is dropped within about two windows and a body of ``size``
    bytes ends within ``(size / min_bytes + 2) * window_s`` whatever the server does."""
    request = client.build_request(method, url, timeout=httpx.Timeout(window_s))
    response = _headers_within(client, request, window_s)
    try:
        yield response, _paced(response, request, window_s, min_bytes)
    finally:
        response.close()


def _paced(
    response: httpx.Response, request: httpx.Request, window_s: float, min_bytes: int
) -> Iterator[bytes]:
    mark, moved = time.monotonic(), 0
    for chunk in response.iter_bytes():  # no chunk_size: that would buffer, unchecked, to it
        moved += len(chunk)
        now = time.monotonic()
        if moved >= min_bytes:
            mark, moved = now, 0
        elif now - mark > window_s:
            raise AnswerDeadline(f"fewer than {min_bytes} bytes in {window_s:g} s", request=request)
        yield chunk


def _headers_within(
    client: httpx.Client, request: httpx.Request, timeout_s: float
) -> httpx.Response:
    """``client.send(stream=True)`` (connect, request, status line and headers) within
    ``timeout_s``. A server trickling its headers never trips a per-read timeout, so the send runs
    in a daemon thread that is abandoned at the deadline; a response it gets later is closed."""
    lock = threading.Lock()
    box: dict[str, Any] = {}

    def send() -> None:
        try:
            response: httpx.Response | None = client.send(request, stream=True)
        except BaseException as exc:  # handed to the caller below
            response, box["error"] = None, exc
        with lock:
            if box.get("abandoned") and response is not None:
                response.close()
            else:
                box["response"] = response

    worker = threading.Thread(target=send, name="sbx-http-send", daemon=True)
    worker.start()
    worker.join(timeout_s)
    with lock:
        if "response" not in box and "error" not in box:
            box["abandoned"] = True
            raise AnswerDeadline(f"no headers within {timeout_s:g} s", request=request)
    if "error" in box:
        raise box["error"]
    response: httpx.Response = box["response"]
    return response


def body_text(response: httpx.Response, body: bytes) -> str:
    """The body decoded as the response says (UTF-8 by default), bad bytes replaced."""
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an encoding name Python does not know
        return body.decode("utf-8", errors="replace")
