"""The fault proxy itself: pass-through, counting, seeded decisions, and each kind of fault
as a plain HTTP client sees it."""

from __future__ import annotations

import http.client
from collections import Counter
from urllib.parse import urlsplit

import pytest

from bed import FaultProxy, S3Server


def _get(proxy: FaultProxy, path: str) -> tuple[int, bytes]:
    """GET ``/bucket/key`` through the proxy with a presigned (authorised) URL."""
    bucket, key = path.lstrip("/").split("/", 1)
    client = S3Server(endpoint_url=proxy.url).client()
    url = urlsplit(client.generate_presigned_url("get_object", {"Bucket": bucket, "Key": key}))
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", f"{url.path}?{url.query}")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_pass_through_and_counts(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0) as proxy:
        client = S3Server(endpoint_url=proxy.url).client()
        client.put_object(Bucket=bucket, Key="a/b c", Body=b"x" * 1000)
        client.put_object(Bucket=bucket, Key="a/b c", Body=b"y" * 1000)
        assert client.get_object(Bucket=bucket, Key="a/b c")["Body"].read() == b"y" * 1000
        assert proxy.count("PUT", f"/{bucket}/a/b c") == 2
        assert proxy.count("GET", f"/{bucket}/a/b c", reached_server=True) == 1
        assert proxy.count() == 3 and proxy.faults_injected() == Counter()
        proxy.reset()
        assert proxy.count() == 0


def test_decisions_are_seeded_rated_and_bounded() -> None:
    def decisions(seed: int) -> list[str | None]:
        proxy = FaultProxy("http://127.0.0.1:9", fault_rate=0.2, seed=seed)
        try:
            return [proxy.decide("PUT", f"/b/k{i % 50}", "partNumber=1") for i in range(2000)]
        finally:
            proxy._server.server_close()

    first = decisions(7)
    assert first == decisions(7)
    assert first != decisions(8)
    rate = sum(d is not None for d in first) / len(first)
    assert 0.15 < rate < 0.25
    assert set(Counter(d for d in first if d)) == {"drop", "slowdown", "truncate"}
    # the same request never fails more than 3 times in a row
    per_key: dict[int, list[str | None]] = {}
    for i, decision in enumerate(first):
        per_key.setdefault(i % 50, []).append(decision)
    for seq in per_key.values():
        run = longest = 0
        for decision in seq:
            run = run + 1 if decision else 0
            longest = max(longest, run)
        assert longest <= 3


@pytest.mark.parametrize("fault", ["drop", "slowdown", "truncate", "corrupt"])
def test_each_fault_as_a_client_sees_it(s3_server: S3Server, fault: str) -> None:
    bucket = s3_server.make_bucket()
    body = bytes(range(256)) * 40
    s3_server.client().put_object(Bucket=bucket, Key="obj", Body=body)
    with FaultProxy(
        s3_server.endpoint_url, fault_rate=1.0, faults=(fault,), max_faults_in_a_row=99
    ) as proxy:
        if fault == "drop":
            with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
                _get(proxy, f"/{bucket}/obj")
        elif fault == "slowdown":
            status, answer = _get(proxy, f"/{bucket}/obj")
            assert status == 503 and b"<Code>SlowDown</Code>" in answer
        elif fault == "truncate":
            with pytest.raises(http.client.IncompleteRead):
                _get(proxy, f"/{bucket}/obj")
        else:
            status, answer = _get(proxy, f"/{bucket}/obj")
            assert status == 200 and len(answer) == len(body) and answer != body
        assert proxy.count("GET", f"/{bucket}/obj", fault=fault) == 1
        assert proxy.count(reached_server=True) == (fault in ("truncate", "corrupt"))


def test_forced_error_answers_every_request(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0) as proxy:
        proxy.forced_error = (403, "AccessDenied")
        status, answer = _get(proxy, "/any-bucket/key")
        assert status == 403 and b"<Code>AccessDenied</Code>" in answer
        assert proxy.count(reached_server=True) == 0
