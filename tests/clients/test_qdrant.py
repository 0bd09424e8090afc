"""sbx's Qdrant client against the stand-in (run as a local process): snapshot → file → recover."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models
from standins.conftest import Standin, StartStandin

from sbx.errors import QdrantError
from tasks.clients.qdrant import connect


@pytest.fixture
def qdrant(start_standin: StartStandin, tmp_path: Path) -> Standin:
    return start_standin(
        "qdrant",
        {
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
        },
        probe="/readyz",
    )


def test_snapshot_to_file_and_recover(qdrant: Standin, tmp_path: Path) -> None:
    raw = QdrantClient(url=qdrant.url, prefer_grpc=False)
    raw.create_collection(
        "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
    )
    raw.upsert(
        "docs",
        points=[models.PointStruct(id=i, vector=[i, 0, 0, 1], payload={"i": i}) for i in range(50)],
    )
    with connect(qdrant.url) as client:
        assert client.collections() == ["docs"]
        assert client.version()
        snap = client.snapshot_to_file("docs", tmp_path)
        assert snap.points == 50 and snap.path.stat().st_size == snap.size > 0
        assert raw.list_snapshots("docs") == []  # deleted on the server after download
        raw.delete_collection("docs")
        assert client.recover_from_file("docs", snap.path) == 50
        with pytest.raises(QdrantError, match="could not count points of collection 'nope'"):
            client.point_count("nope")
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
