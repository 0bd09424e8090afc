"""Every HTTP client against hostile servers: bounded time, a clear error, never a hang (#23).

The deadline is the whole answer's (connect + headers + body): a server that trickles its body a
byte at a time keeps httpx's per-read timeout happy for ever, so only a whole-answer deadline
ends the call.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faults.figures import FIGURES

from sbx.errors import HttpError, QdrantError
from tasks.clients.health_http import BODY_LIMIT, HealthHttp
from tasks.clients.http_probe import HttpProbe
from tasks.clients.vllm_metrics import read_metrics_text
from tasks.keys import NO_KEYS

from .servers import DELETED, PATHS, hostile_server

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


@pytest.mark.parametrize("path", PATHS)
def test_qdrant_snapshot_download_is_bounded_and_leaves_no_file(
    base: str, path: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A snapshot download from a Qdrant that stalls, trickles, breaks off or floods ends within
    its stall window with an error naming the URL and the collection, and no partial file."""
    from tasks.clients.qdrant import connect as connect_qdrant  # ~1.5 s import

    _count(request)
    collection = path.strip("/")
    # the client's own calls get whole seconds (qdrant-client truncates its timeout to an int)
    with connect_qdrant(base, timeout_s=5) as qdrant:
        started = time.monotonic()
        with pytest.raises(QdrantError) as caught:
            qdrant.snapshot_to_file(collection, tmp_path, stall_s=TIMEOUT_S)
    took = time.monotonic() - started
    assert took < BOUND_S + (5 if path == "/flood" else 0), f"{path}: took {took:.1f} s"
    message = str(caught.value)
    assert message.startswith(f"Downloading snapshot {collection}-1.snapshot of '{collection}' "
                              f"from {base} "), message  # fmt: skip
    assert list(tmp_path.iterdir()) == [], "a partial snapshot was left behind"
    # nor on the server: the snapshot sbx made is deleted there too (Qdrant would keep it)
    assert DELETED[-1:] == [f"{collection}/{collection}-1.snapshot"], DELETED


def test_a_snapshot_download_cut_by_sigterm_is_deleted_on_the_server(
    base: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGTERM (docker stop, systemd) while the download hangs: the snapshot on the server is
    deleted on the way out, as after any other failure, and no partial file stays here."""
    from tasks.clients.qdrant import connect as connect_qdrant

    _count(request)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(143)  # what a process that handles SIGTERM does

    previous = signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        with connect_qdrant(base, timeout_s=5) as qdrant, pytest.raises(SystemExit):
            timer.start()
            qdrant.snapshot_to_file("silent", tmp_path, stall_s=20)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert DELETED[-1:] == ["silent/silent-1.snapshot"], DELETED
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_qdrant_snapshot_fails_its_part_and_stores_nothing(
    base: str, tmp_path: Path, request: pytest.FixtureRequest, prefect_server: str
) -> None:
    """The backup's qdrant part against a Qdrant whose snapshot download trickles: the part is
    recorded failed within the configured stall window, naming the URL, with no file stored."""
    from blocks.config import ConsistencyMethod, PartConfig, SbxConfig
    from sbx.repository import Repository
    from sbx.repository.storage.local import LocalStorage
    from tasks.backup.capture import CaptureContext, capture_part

    class AtHostile(CaptureContext):
        def service(self, name: str | None) -> Any:
            return SimpleNamespace(ok=True, url=base, credentials=NO_KEYS)

    _count(request)
    stack = tmp_path / "stack"
    (stack / "data/qdrant").mkdir(parents=True)
    ctx = AtHostile(SbxConfig(stack_dir=stack, qdrant_snapshot_stall_s=TIMEOUT_S), status=None)
    part = PartConfig(paths=["data/qdrant"], method=ConsistencyMethod.QDRANT_SNAPSHOT)
    repo = Repository.open_or_init(LocalStorage(tmp_path / "repo"))
    with repo.writer() as writer:
        writer.begin_snapshot(stack_dir=stack)
        record, took = _timed(lambda: capture_part.fn(writer, "qdrant", part, ctx))
        writer.commit()
    # the trickle lasts 60 s; Prefect's task run and the client's import cost some seconds
    assert took < 30, f"the part took {took:.1f} s"
    assert record.status == "failed", record  # type: ignore[attr-defined]
    assert f"'trickle' from {base} stalled" in str(record.reason)  # type: ignore[attr-defined]
    assert record.stats.files == 0  # type: ignore[attr-defined]
    # the snapshot is deleted on the server, and sbx's ledger of its requests is empty again
    assert DELETED[-1:] == ["trickle/trickle-1.snapshot"], DELETED
    assert (stack / ".sbx/qdrant-snapshots.json").read_text() == "[]"
