"""Skipping or failing on a missing service, free ports, waiting for things to answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import NoReturn

import pytest

# Never required by CI=true alone (CI machines have no GPU); SBX_TEST_REQUIRE can still name them.
CI_OPTIONAL = frozenset({"gpu"})


def required_services() -> frozenset[str] | None:
    """Names that must not be skipped; None means all (except CI_OPTIONAL under CI=true)."""
    names = {n.strip() for n in os.environ.get("SBX_TEST_REQUIRE", "").split(",") if n.strip()}
    if "all" in names:
        return None
    return frozenset(names)


def _required_because(name: str) -> str | None:
    """Why ``name`` must not be skipped here, or None when a skip is fine."""
    named = required_services()
    if named is None or name in named:
        return f"SBX_TEST_REQUIRE={os.environ.get('SBX_TEST_REQUIRE', '')}"
    if os.environ.get("CI", "").lower() == "true" and name not in CI_OPTIONAL:
        return "CI=true"
    return None


def require_service(name: str, reason: str) -> NoReturn:
    """Skip the test because service ``name`` is missing, or fail when it is required here.

    Required means CI=true, or SBX_TEST_REQUIRE names it (comma-separated, or "all").
    ``reason`` says what is missing and how to get it.
    """
    message = f"service '{name}' is not available: {reason}"
    because = _required_because(name)
    if because:
        pytest.fail(f"{message} [a failure, not a skip: {because}]", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while picking, so no duplicates)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def http_status(
    url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None
) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers (no proxies used)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(
            urllib.request.Request(url, headers=headers or {}), timeout=timeout
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def log_tail(path: os.PathLike[str] | str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM a service the bed started; SIGKILL it if it does not end within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
