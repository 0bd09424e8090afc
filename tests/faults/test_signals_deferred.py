"""signals_deferred holds a SIGTERM back while other threads run (as Prefect's do): then delivers.

A signal mask covers the calling thread only: with another thread alive, a process-directed
SIGTERM went to that thread and Prefect's handler raised in the main thread at once — inside the
block meant to finish a restart and remove its stop marker (found by the crash trials,
SBX_FAULT_SEED=20261128).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from tasks.services import signals_deferred


@pytest.fixture
def sigterm_log() -> Iterator[list[str]]:
    got: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda _s, _f: got.append("handled"))
    yield got
    signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_waits_for_the_block_with_other_threads_alive(sigterm_log: list[str]) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # ample time for a handler to run, were it not held
            assert sigterm_log == []
        assert sigterm_log == ["handled"]  # delivered once the block is done
    finally:
        stop.set()


def test_nested_blocks_deliver_once_at_the_outer_end(sigterm_log: list[str]) -> None:
    with signals_deferred():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
        assert sigterm_log == []
    assert sigterm_log == ["handled"]
