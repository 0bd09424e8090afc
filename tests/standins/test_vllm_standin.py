"""The vLLM stand-in speaks vLLM's OpenAI-compatible API and fails in the ways it is told to."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Standin, StartStandin

MODEL = "test-model"


def chat(base: str, content: str = "hello there", **extra: object) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=5)


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by Prometheus's own parser (so the format is checked)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def vllm(start_standin: StartStandin) -> Standin:
    return start_standin("vllm", args=("--model", "/models/m", "--served-model-name", MODEL))


def test_models_list_and_health(vllm: Standin) -> None:
    assert httpx.get(f"{vllm.url}/health").status_code == 200
    assert httpx.get(f"{vllm.url}/version").json()["version"].startswith("0.6")
    models = httpx.get(f"{vllm.url}/v1/models").json()
    assert models["object"] == "list"
    (model,) = models["data"]
    assert model["id"] == MODEL  # --served-model-name wins over --model, as in vLLM
    assert model["root"] == "/models/m"
    assert model["object"] == "model"
    assert model["owned_by"] == "vllm"
    assert model["max_model_len"] == 4096


def test_chat_completion_has_openai_fields_and_honours_max_tokens(vllm: Standin) -> None:
    resp = chat(vllm.url, "one two three four five six", max_tokens=3)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == MODEL
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 3
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens"] == 6
    assert usage["total_tokens"] == 9

    short = chat(vllm.url, "hi").json()
    assert short["choices"][0]["finish_reason"] == "stop"
    assert short["choices"][0]["message"]["content"] == "ok hi"


def test_text_completion_and_streaming(vllm: Standin) -> None:
    body = {"model": MODEL, "prompt": "say something", "max_tokens": 2}
    done = httpx.post(f"{vllm.url}/v1/completions", json=body).json()
    assert done["object"] == "text_completion"
    assert done["choices"][0]["text"] == "ok say"

    stream_body = {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "a b"}],
    }
    with httpx.stream("POST", f"{vllm.url}/v1/chat/completions", json=stream_body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in resp.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "ok a b"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_errors_use_openai_error_shape(vllm: Standin) -> None:
    wrong = httpx.post(
        f"{vllm.url}/v1/chat/completions",
        json={"model": "other", "messages": [{"role": "user", "content": "x"}]},
    )
    assert wrong.status_code == 404
    error = wrong.json()
    assert error["object"] == "error"
    assert error["type"] == "NotFoundError"
    assert error["code"] == 404
    assert "other" in error["message"]

    too_long = chat(vllm.url, max_tokens=5000)
    assert too_long.status_code == 400
    assert "maximum context length is 4096" in too_long.json()["message"]
    # the connection stays usable after errors (keep-alive bodies fully read)
    with httpx.Client(base_url=vllm.url) as client:
        assert client.post("/v1/chat/completions", content=b"{not json").status_code == 400
        assert client.get("/health").status_code == 200


def test_metrics_count_served_requests(vllm: Standin) -> None:
    labels = (("model_name", MODEL),)
    before = samples(vllm.url)
    assert before[("vllm:num_requests_running", labels)] == 0
    assert chat(vllm.url, "one two", max_tokens=10).status_code == 200
    after = samples(vllm.url)

    def delta(name: str, extra: tuple[tuple[str, str], ...] = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return after[key] - before[key]

    assert delta("vllm:prompt_tokens_total") == 2
    assert delta("vllm:generation_tokens_total") == 3
    assert delta("vllm:request_success_total", (("finished_reason", "stop"),)) == 1
    assert delta("vllm:e2e_request_latency_seconds_count") == 1
    assert delta("vllm:e2e_request_latency_seconds_bucket", (("le", "+Inf"),)) == 1
    assert delta("vllm:time_to_first_token_seconds_count") == 1
    assert ("vllm:num_requests_waiting", labels) in after
    assert ("vllm:gpu_cache_usage_perc", labels) in after


def test_sigterm_stops_quickly(vllm: Standin) -> None:
    started = time.monotonic()
    assert vllm.stop() == 0
    assert time.monotonic() - started < 3
    assert '"GET / HTTP/1.1" 404' in vllm.output()  # one log line per request


def test_slow_start_answers_503_then_serves(start_standin: StartStandin) -> None:
    vllm = start_standin("vllm", {"STANDIN_FAIL_MODE": "slow-start", "STANDIN_START_DELAY": "1"})
    assert httpx.get(f"{vllm.url}/health").status_code == 503
    assert httpx.get(f"{vllm.url}/v1/models").status_code == 503
    deadline = time.monotonic() + 5
    while httpx.get(f"{vllm.url}/health").status_code != 200:
        assert time.monotonic() < deadline, "still 503 long after STANDIN_START_DELAY"
        time.sleep(0.1)
    assert (
        httpx.get(f"{vllm.url}/v1/models").json()["data"][0]["id"] == "facebook/opt-125m"
    )  # vLLM 0.6's default --model


def test_error_mode_breaks_only_completions(start_standin: StartStandin) -> None:
    vllm = start_standin(
        "vllm", {"STANDIN_FAIL_MODE": "error"}, args=("--served-model-name", MODEL)
    )
    assert httpx.get(f"{vllm.url}/health").status_code == 200
    assert httpx.get(f"{vllm.url}/v1/models").status_code == 200
    resp = chat(vllm.url)
    assert resp.status_code == 500
    assert resp.json()["object"] == "error"
    assert resp.json()["code"] == 500


def test_hang_mode_never_answers_but_looks_healthy(start_standin: StartStandin) -> None:
    vllm = start_standin("vllm", {"STANDIN_FAIL_MODE": "hang"}, args=("--served-model-name", MODEL))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{vllm.url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            timeout=1,
        )
    assert httpx.get(f"{vllm.url}/health").status_code == 200
    assert samples(vllm.url)[("vllm:num_requests_running", (("model_name", MODEL),))] == 1
    started = time.monotonic()
    assert vllm.stop() == 0  # a hung handler thread does not hold up shutdown
    assert time.monotonic() - started < 3


def test_crash_mode_exits_with_1(start_standin: StartStandin) -> None:
    vllm = start_standin("vllm", {"STANDIN_FAIL_MODE": "crash", "STANDIN_CRASH_AFTER": "0.5"})
    assert vllm.proc.wait(timeout=5) == 1
    assert "engine core died" in vllm.output()


def test_unknown_fail_mode_is_refused(start_standin: StartStandin) -> None:
    vllm = start_standin("vllm", {"STANDIN_FAIL_MODE": "flaky"}, wait=False)
    assert vllm.proc.wait(timeout=5) == 1
    assert "STANDIN_FAIL_MODE must be one of" in vllm.output()


def test_served_names_come_from_the_arguments(start_standin: StartStandin) -> None:
    # --model alone: it is the served name too (`served_model_name or [model]`)
    alone = start_standin(
        "vllm", {"SERVED_MODEL_NAME": "env-is-not-read"}, args=("--model", "org/m")
    )
    assert [m["id"] for m in httpx.get(f"{alone.url}/v1/models").json()["data"]] == ["org/m"]
    # several served names (nargs +): each is listed and may be asked for; the first is reported
    both = start_standin(
        "vllm",
        args=("--model", "/models/m", "--served-model-name", "a/x", "b", "--max-model-len", "64"),
    )
    listed = httpx.get(f"{both.url}/v1/models").json()["data"]
    assert [(m["id"], m["root"], m["max_model_len"]) for m in listed] == [
        ("a/x", "/models/m", 64),
        ("b", "/models/m", 64),
    ]
    body = {"model": "b", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{both.url}/v1/chat/completions", json=body, timeout=5).json()
    assert answer["model"] == "a/x"
    body["model"] = "org/m"
    assert httpx.post(f"{both.url}/v1/chat/completions", json=body, timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--modle", "org/m"), "unrecognized arguments: --modle org/m"),
        (("--quantization", "awq4"), "argument --quantization/-q: invalid choice: 'awq4'"),
        (("--max-model-len", "4k"), "argument --max-model-len: invalid int value: '4k'"),
        (("--served-model-name",), "argument --served-model-name: expected at least one argument"),
        (("serve", "org/m"), "unrecognized arguments: serve org/m"),
    ],
    ids=["unknown", "quantization", "length", "no-name", "positional"],
)
def test_arguments_upstream_does_not_take_are_refused_like_argparse(
    start_standin: StartStandin, args: tuple[str, ...], complaint: str
) -> None:
    vllm = start_standin("vllm", args=args, wait=False)
    assert vllm.proc.wait(timeout=5) == 2
    assert complaint in vllm.output()
    assert "usage: api_server.py" in vllm.output()
