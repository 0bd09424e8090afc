"""The reverse-proxy stand-in: TLS, API keys from a file read at start, an access log that names a
key only by its fingerprint, X-Forwarded-For from loopback only, /v1/ forwarded to the worker.

Run as a local process (conftest.py) in front of a local vLLM stand-in; the address a request
from another container shows is tested against the running stack (test_incident_stack.py).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from pathlib import Path

import httpx
import pytest

from .conftest import IMAGES, Standin, StartStandin, free_port

EXAMPLE = IMAGES.parent
CERT = EXAMPLE / "proxy" / "tls" / "cert.pem"
KEY = EXAMPLE / "proxy" / "tls" / "key.pem"
KEYS = {"ops": "sk-test-ops-aaaa", "agent": "sk-test-agent-bbbb"}


def fp(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CERT))


def start_proxy(
    start_standin: StartStandin, tmp_path: Path, upstream: str, log_format: str = "combined"
) -> tuple[Standin, Path]:
    keys = tmp_path / "keys.txt"
    keys.write_text(
        "# name key\n\n" + "".join(f"{n}  {k}   # {n}'s key\n" for n, k in KEYS.items())
    )
    log = tmp_path / "proxy" / "access.log"
    proxy = start_standin(
        "proxy",
        {
            "KEYS_FILE": str(keys),
            "TLS_CERT": str(CERT),
            "TLS_KEY": str(KEY),
            "ACCESS_LOG": str(log),
            "UPSTREAM": upstream,
            "PROXY_LOG_FORMAT": log_format,
        },
        wait=False,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"https://127.0.0.1:{proxy.port}/health", verify=tls(), timeout=1)
            break
        except httpx.HTTPError:
            if proxy.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the proxy stand-in did not come up:\n{proxy.output()}")
            time.sleep(0.05)
    return proxy, log


def base(proxy: Standin) -> str:
    return f"https://127.0.0.1:{proxy.port}"


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "User-Agent": "probe/1", **extra}


def test_good_key_is_forwarded_bad_and_missing_keys_get_401_and_all_are_logged(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    worker = start_standin("vllm", args=("--model", "m-test"), probe="/health")
    proxy, log = start_proxy(start_standin, tmp_path, worker.url)
    with httpx.Client(verify=tls(), timeout=10) as http:
        assert http.get(f"{base(proxy)}/health").json() == {"status": "ok"}
        models = http.get(f"{base(proxy)}/v1/models", headers=bearer(KEYS["ops"]))
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == ["m-test"]
        chat = http.post(
            f"{base(proxy)}/v1/chat/completions",
            headers=bearer(KEYS["agent"]),
            json={"model": "m-test", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200
        assert chat.json()["choices"][0]["message"]["content"].startswith("ok")
        wrong = http.get(f"{base(proxy)}/v1/models", headers=bearer("sk-leaked-guess"))
        none = http.get(f"{base(proxy)}/v1/models", headers={"User-Agent": "probe/1"})
        assert (wrong.status_code, none.status_code) == (401, 401)
        assert http.get(f"{base(proxy)}/admin", headers=bearer(KEYS["ops"])).status_code == 404
    lines = log.read_text().splitlines()
    # health probes are not logged; every other request is, in order
    assert len(lines) == 5, lines
    addr, dash, user = lines[0].split(" ")[:3]
    assert (addr, dash, user) == ("127.0.0.1", "-", fp(KEYS["ops"]))
    assert '"GET /v1/models HTTP/1.1" 200 ' in lines[0]
    assert lines[0].endswith('"-" "probe/1"')
    assert f"- {fp(KEYS['agent'])} [" in lines[1]
    assert '"POST /v1/chat/completions HTTP/1.1" 200 ' in lines[1]
    # a rejected key shows by its fingerprint; no key shows as "-"
    assert f"- {fp('sk-leaked-guess')} [" in lines[2]
    assert '" 401 ' in lines[2]
    assert lines[3].startswith("127.0.0.1 - - [")
    assert '" 401 ' in lines[3]
    assert '"GET /admin HTTP/1.1" 404 ' in lines[4]
    stamp = lines[0].split("[", 1)[1].split("]", 1)[0]
    assert time.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z")
    # a key is never written in full
    text = log.read_text() + proxy.output()
    assert all(key not in text for key in [*KEYS.values(), "sk-leaked-guess"])


def test_json_log_and_x_forwarded_for_from_loopback(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    worker = start_standin("vllm", probe="/health")
    proxy, log = start_proxy(start_standin, tmp_path, worker.url, log_format="json")
    outside = {"X-Forwarded-For": "203.0.113.77, 10.0.0.2"}
    with httpx.Client(verify=tls(), timeout=10) as http:
        ok = http.get(f"{base(proxy)}/v1/models", headers=bearer(KEYS["agent"], **outside))
        bad = http.get(f"{base(proxy)}/v1/models?x=1", headers=outside)
    assert (ok.status_code, bad.status_code) == (200, 401)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [set(e) for e in entries] == [
        {"time", "remote_addr", "key_fp", "method", "path", "status", "bytes", "user_agent"}
    ] * 2
    first, second = entries
    assert first["remote_addr"] == "203.0.113.77"
    assert first["key_fp"] == fp(KEYS["agent"])
    assert (first["method"], first["path"], first["status"]) == ("GET", "/v1/models", 200)
    assert first["bytes"] == len(ok.content)
    assert first["user_agent"] == "probe/1"
    assert first["time"].endswith("+00:00")
    assert second["key_fp"] is None
    assert (second["path"], second["status"]) == ("/v1/models?x=1", 401)


def test_keys_are_read_at_start_only_and_a_dead_worker_is_a_502(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy, log = start_proxy(start_standin, tmp_path, dead)
    (tmp_path / "keys.txt").write_text("late sk-added-after-start\n")
    with httpx.Client(verify=tls(), timeout=10) as http:
        late = http.get(f"{base(proxy)}/v1/models", headers=bearer("sk-added-after-start"))
        gone = http.get(f"{base(proxy)}/v1/models", headers=bearer(KEYS["ops"]))
    assert late.status_code == 401  # revoking or adding a key needs a restart
    assert gone.status_code == 502
    assert "unreachable" in gone.json()["error"]
    assert '" 502 ' in log.read_text().splitlines()[-1]


def test_the_certificate_is_the_example_one_for_localhost(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    proxy, _ = start_proxy(start_standin, tmp_path, "http://127.0.0.1:9")
    # verified against the committed certificate by name, and plain HTTP is refused
    assert httpx.get(f"https://localhost:{proxy.port}/health", verify=tls()).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{proxy.port}/health", timeout=2)
