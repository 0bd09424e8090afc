"""sbx's Qdrant client against the stand-in (run as a local process): snapshot → file → recover.

Qdrant keeps every uploaded snapshot and each one asked for until it is deleted, in
<snapshots>/<collection>/ (snapshot_api.rs do_save_uploaded_snapshot): the tests look in that
folder, the live box's data/qdrant/snapshots, for anything of sbx's left there.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models
from standins.conftest import Standin, StartStandin

from sbx.errors import QdrantError
from tasks.clients.qdrant import connect


def _start(start_standin: StartStandin, tmp_path: Path, delay_s: float = 0) -> Standin:
    return start_standin(
        "qdrant",
        {
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
            "QDRANT_STANDIN_SNAPSHOT_DELAY_S": str(delay_s),
        },
        probe="/readyz",
    )


@pytest.fixture
def qdrant(start_standin: StartStandin, tmp_path: Path) -> Standin:
    return _start(start_standin, tmp_path)


def _seed(url: str, points: int = 50) -> QdrantClient:
    raw = QdrantClient(url=url, prefer_grpc=False)
    raw.create_collection(
        "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
    )
    raw.upsert(
        "docs",
        points=[
            models.PointStruct(id=i, vector=[i, 0, 0, 1], payload={"i": i}) for i in range(points)
        ],
    )
    return raw


def _out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir(exist_ok=True)
    return tmp_path / "out"


def _on_server(tmp_path: Path) -> list[str]:
    """Snapshot files in the server's snapshot folder (data/qdrant/snapshots on a box)."""
    return sorted(p.name for p in (tmp_path / "snapshots").rglob("*") if p.is_file())


def test_snapshot_to_file_and_recover(qdrant: Standin, tmp_path: Path) -> None:
    raw = _seed(qdrant.url)
    theirs = raw.create_snapshot("docs")  # the operator's own: never sbx's to delete
    assert theirs is not None
    with connect(qdrant.url) as client:
        assert client.collections() == ["docs"]
        assert client.version()
        snap = client.snapshot_to_file("docs", _out(tmp_path))
        assert snap.points == 50 and snap.path.stat().st_size == snap.size > 0
        assert _on_server(tmp_path) == [theirs.name, f"{theirs.name}.checksum"]
        raw.delete_collection("docs")
        assert client.recover_from_file("docs", snap.path) == 50
        assert client.recover_from_file("docs", snap.path, sha256=snap.sha256) == 50
        # the uploads (Qdrant keeps them) are gone too; the operator's snapshot stays
        assert _on_server(tmp_path) == [theirs.name, f"{theirs.name}.checksum"]
        with pytest.raises(QdrantError, match="could not count points of collection 'nope'"):
            client.point_count("nope")
    raw.close()


def test_an_upload_that_is_not_the_known_file_is_refused_and_leaves_nothing(
    qdrant: Standin, tmp_path: Path
) -> None:
    raw = _seed(qdrant.url)
    with connect(qdrant.url) as client:
        snap = client.snapshot_to_file("docs", _out(tmp_path))
        raw.upsert("docs", points=[models.PointStruct(id=99, vector=[1, 1, 1, 1])])
        with pytest.raises(QdrantError, match="its sha256 is not 0000000000000000…, the one"):
            client.recover_from_file("docs", snap.path, sha256="0" * 64)
        assert client.point_count("docs") == 51  # untouched
        # an upload a killed run left is sbx's by its name, and goes with the next recover
        leftover = tmp_path / "snapshots/docs/sbx-upload-0123456789abcdef.snapshot"
        leftover.write_bytes(snap.path.read_bytes())
        assert client.recover_from_file("docs", snap.path) == 50
    assert _on_server(tmp_path) == []
    raw.close()


def test_a_snapshot_slower_than_the_client_timeout_is_waited_for(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    slow = _start(start_standin, tmp_path, delay_s=2)
    raw = _seed(slow.url)
    # the client's requests time out after 1 s; making the snapshot takes longer: the create is
    # asynchronous and its wait scales, so it is not asked for twice
    with connect(slow.url, timeout_s=1) as client:
        snap = client.snapshot_to_file("docs", _out(tmp_path), create_timeout_s=10)
    assert snap.points == 50
    time.sleep(2.5)  # a second snapshot, had one been asked for, would be there by now
    assert _on_server(tmp_path) == []
    raw.close()


@pytest.mark.parametrize("retry_after_s", [0, 1.5])
def test_a_retried_snapshot_leaves_one_at_most_then_none(
    start_standin: StartStandin, tmp_path: Path, retry_after_s: float
) -> None:
    """The first attempt gives up before Qdrant finishes; its snapshot appears later. The
    retry (a new client, as Prefect's retry makes one, or the next night's run) waits for that
    one while it is still being made, or deletes it once made; either way none is left."""
    slow = _start(start_standin, tmp_path, delay_s=1)
    raw = _seed(slow.url)
    theirs = raw.create_snapshot("docs")
    assert theirs is not None
    mine = [theirs.name, f"{theirs.name}.checksum"]
    ledger = tmp_path / "stack/.sbx/qdrant-snapshots.json"
    with connect(slow.url) as client, pytest.raises(QdrantError, match="did not finish"):
        client.snapshot_to_file("docs", _out(tmp_path), create_timeout_s=0.5, ledger=ledger)
    time.sleep(retry_after_s)
    assert len([n for n in _on_server(tmp_path) if n.endswith(".snapshot")]) <= 2  # theirs + 1
    with connect(slow.url) as client:
        snap = client.snapshot_to_file("docs", _out(tmp_path), ledger=ledger)
    assert snap.points == 50
    time.sleep(1.5)
    assert _on_server(tmp_path) == mine
    assert ledger.read_text() == "[]"
    raw.close()


def test_unreachable_qdrant_is_retryable(tmp_path: Path) -> None:
    with connect("http://127.0.0.1:9", timeout_s=2) as client, pytest.raises(QdrantError) as caught:
        client.collections()
    assert caught.value.retryable and "Is the service running?" in str(caught.value)


def test_a_timeout_under_a_second_still_talks(qdrant: Standin) -> None:
    # qdrant-client takes whole seconds: int(0.5) == 0 made its sockets non-blocking and every
    # call failed "Operation now in progress … Is the service running?"
    with connect(qdrant.url, timeout_s=0.5) as client:
        assert client.collections() == []


def test_a_keyed_qdrant_gets_the_key_on_every_call_the_download_included(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    """Issue 19: QDRANT__SERVICE__API_KEY set, the client sends the key everywhere (the raw
    snapshot download over httpx too); without it every call is refused, saying what to do."""
    from pydantic import SecretStr

    key = "qdrant-test-key"
    keyed = start_standin(
        "qdrant",
        {
            "QDRANT__SERVICE__API_KEY": key,
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
        },
        probe="/readyz",
    )
    raw = QdrantClient(url=keyed.url, prefer_grpc=False, headers={"api-key": key})
    raw.create_collection("docs", vectors_config=models.VectorParams(size=4, distance="Dot"))
    raw.upsert("docs", points=[models.PointStruct(id=i, vector=[i, 0, 0, 1]) for i in range(9)])
    raw.close()
    with connect(keyed.url, api_key=SecretStr(key)) as client:
        snap = client.snapshot_to_file("docs", tmp_path)
        assert snap.points == 9 and snap.size > 0
        assert client.recover_from_file("docs", snap.path) == 9
    with connect(keyed.url) as client, pytest.raises(QdrantError) as refused:
        client.collections()
    assert "HTTP 401" in str(refused.value) and "QDRANT__SERVICE__API_KEY" in str(refused.value)
    with connect(keyed.url, api_key=SecretStr("wrong")) as client, pytest.raises(QdrantError):
        client.point_count("docs")
    assert key not in str(refused.value)
