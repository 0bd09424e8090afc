"""The proxy and agent in the running example stack, and the seeded compromise the incident tests
build on (tests/bed/incident_seed.py): what it leaves in the stack's logs is what the spec says.
"""

from __future__ import annotations

import json
import textwrap

from bed import RunningStack
from bed.incident_seed import OFF_LIST_URL, OUTSIDE_ADDR, key_fingerprint, seed_compromise

# run inside the worker container: a request to the proxy from another container, with a
# forged X-Forwarded-For the proxy must not believe
FROM_A_CONTAINER = textwrap.dedent(
    """
    import ssl, urllib.request
    req = urllib.request.Request(
        "https://proxy:443/v1/models",
        headers={"Authorization": "Bearer %s", "X-Forwarded-For": "198.51.100.9"},
    )
    print(urllib.request.urlopen(req, context=ssl._create_unverified_context()).status)
    """
)


def test_seeded_compromise_shows_in_the_stack_logs(running_stack: RunningStack) -> None:
    stack = running_stack
    keys = stack.proxy_keys()
    assert sorted(keys) == ["agent", "ops", "webui"]
    seeded = seed_compromise(stack)
    assert seeded.leaked_key_name == "agent"
    assert seeded.leaked_fp == key_fingerprint(keys["agent"])
    assert (seeded.outside_addr, seeded.off_list_url) == (OUTSIDE_ADDR, OFF_LIST_URL)

    access = (stack.path / "logs" / "proxy" / "access.log").read_text().splitlines()
    seeded_lines = [line for line in access if "sbx-test-seed" in line]
    users = [line.split(" ")[2] for line in seeded_lines]
    assert users == [key_fingerprint(k) for k in keys.values()] + [seeded.leaked_fp] * 2
    outside = [line for line in seeded_lines if line.startswith(f"{OUTSIDE_ADDR} ")]
    assert [line.split(" HTTP/", 1)[0].split("] ", 1)[1] for line in outside] == [
        '"GET /v1/models',
        '"POST /v1/chat/completions',
    ]
    # normal use arrives through Docker's published port: from the bridge gateway (the host)
    inside = {line.split(" ", 1)[0] for line in seeded_lines} - {OUTSIDE_ADDR}
    assert len(inside) == 1

    fetches = [
        json.loads(line)
        for line in (stack.path / "logs" / "agents" / "internet-research.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [(f["allowed"], f["fetched"]) for f in fetches] == [(True, True), (False, True)]
    assert fetches[1]["url"] == OFF_LIST_URL
    assert fetches[1]["host"] == "exfil.attacker.test"

    # another container cannot forge its address: its own shows
    code = FROM_A_CONTAINER % keys["ops"]
    ran = stack.compose("exec", "-T", "worker", "python3", "-c", code)
    assert ran.stdout.strip() == "200"
    last = (stack.path / "logs" / "proxy" / "access.log").read_text().splitlines()[-1]
    addr = last.split(" ", 1)[0]
    assert addr not in ("198.51.100.9", *inside)
    assert last.split(" ")[2] == key_fingerprint(keys["ops"])
