"""A completion passes only when it is one: text, the served model, sane usage (#23 finding 3).

A fake OpenAI server in a thread lists the model and answers each completion with the body a
test sets; the same judge runs in health (and so in the upgrade gate, which runs health's
rounds) and in the model-swap prompt suite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from health_helpers import target

from blocks.config import SbxConfig
from tasks.clients.health_http import HealthHttp
from tasks.gpu.model_swap import Prompt, run_prompt_suite
from tasks.health import http_services
from tasks.health.checks import run_check
from tasks.health.completion import judge_completion
from tasks.health.model import HealthContext

MODEL = "Qwen/Qwen2.5-7B-Instruct-AWQ"
USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def reply(message: Any = None, **overrides: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": message if message is not None else {"content": "ok"}}
    return {"model": MODEL, "choices": [choice], "usage": USAGE, **overrides}


GOOD = reply()
BAD = {
    "message null": {"model": MODEL, "choices": [{"message": None}], "usage": USAGE},
    "content empty": reply({"role": "assistant", "content": ""}),
    "content not text": reply({"content": {"a": 1}}),
    "choice not an object": {"model": MODEL, "choices": [None], "usage": USAGE},
    "no choices": reply(choices=[]),
    "another model": reply(model="other/model"),
    "no usage": reply(usage=None),
    "no completion token": reply(usage={**USAGE, "completion_tokens": 0, "total_tokens": 1}),
    "negative tokens": reply(usage={**USAGE, "prompt_tokens": -1, "total_tokens": 0}),
    "tokens as text": reply(usage={**USAGE, "completion_tokens": "1"}),
    "total that does not add up": reply(usage={**USAGE, "total_tokens": 7}),
    "not an object": ["ok"],
}


class _Fake(BaseHTTPRequestHandler):
    completion: Any = GOOD

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(type(self).completion)

    def _send(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def health_of(tmp_path: Path, url: str) -> Any:
    config = SbxConfig(stack_dir=tmp_path, health={"models": {"worker": MODEL}})  # type: ignore[arg-type]
    ctx = HealthContext(
        stack_dir=tmp_path, project="p", services={"worker": target("worker", "openai", url=url)}
    )
    with HealthHttp(timeout_s=2) as http:
        (check,) = http_services.plan(config, ctx, http)
        return run_check(check)


def test_a_real_completion_passes_everywhere(tmp_path: Path, fake: tuple[str, type[_Fake]]) -> None:
    url, _ = fake
    assert judge_completion(GOOD, MODEL).text == "ok"
    assert judge_completion({**GOOD, "choices": [{"text": "ok"}]}, MODEL).text == "ok"
    assert health_of(tmp_path, url).state == "ok"
    suite = run_prompt_suite.fn(url, MODEL, [Prompt(name="p", prompt="hi", expect="ok")])
    assert [r.passed for r in suite.results] == [True]


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_hollow_completion_fails_health_and_the_prompt_suite(
    tmp_path: Path, fake: tuple[str, type[_Fake]], name: str
) -> None:
    url, handler = fake
    handler.completion = BAD[name]
    verdict = judge_completion(BAD[name], MODEL)
    assert not verdict.ok and verdict.text is None and verdict.problem
    worker = health_of(tmp_path, url)
    assert worker.state == "failing", worker.observed
    assert "one-token chat completion answered" in worker.observed
    # the prompt suite expects anything (".*"): only the judge can fail it
    suite = run_prompt_suite.fn(url, MODEL, [Prompt(name="p", prompt="hi", expect=".*")])
    assert [r.passed for r in suite.results] == [False], suite.results[0].detail
    assert suite.results[0].detail.startswith("completion answered")
