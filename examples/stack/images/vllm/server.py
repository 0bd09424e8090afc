"""Stand-in for a vLLM OpenAI-compatible server (the stack's `worker` and `watchdog`).

vLLM needs a GPU and model weights, neither of which the test bed has, so this one file speaks
the parts of vLLM 0.6.x's HTTP API that sbx relies on, with nothing but the Python 3.11 standard
library (the image is a Debian minbase with python3 only):

    GET  /health               200 with an empty body when ready, 503 while "loading"
    GET  /version              {"version": "0.6.3-standin"}
    GET  /v1/models            OpenAI model list with vLLM's extra fields (root, max_model_len)
    POST /v1/chat/completions  OpenAI chat.completion (or chat.completion.chunk SSE with stream)
    POST /v1/completions       OpenAI text_completion (or SSE with stream)
    GET  /metrics              Prometheus text with vLLM's metric names and `model_name` label

Replies are deterministic: "ok" followed by an echo of the last user message, cut to max_tokens
words (one word counts as one token). Errors use vLLM's OpenAI-style body
`{"object": "error", "message": ..., "type": ..., "param": null, "code": N}`.

Arguments as vLLM 0.6.3's OpenAI server takes them (``python3 -m
vllm.entrypoints.openai.api_server``, the vllm/vllm-openai image's entrypoint: a compose
``command:`` is appended to it). Parsed with argparse as upstream does, so an argument upstream
does not know is refused the same way (usage on stderr, exit 2); see ``parse_arguments``:

    --model (facebook/opt-125m), --served-model-name NAME [NAME ...] (default: the model): the
        names /v1/models lists and requests may ask for, the first one reported
    --max-model-len: context length, checked like vLLM (400 when prompt + max_tokens exceed
        it); unset: the model folder's config.json max_position_embeddings, else 4096
    --quantization/-q (one of upstream's methods), --gpu-memory-utilization (0.9): checked, not used
    --api-key: with a key (``VLLM_API_KEY``, else ``--api-key``: vLLM 0.6's order) every path
        starting with ``/v1`` wants ``Authorization: Bearer <key>`` and answers 401
        ``{"error": "Unauthorized"}`` without it; OPTIONS, ``/health``, ``/metrics`` and
        ``/version`` stay open. No key: everything is open.
    --host (all addresses), --port (8000)
    and a few more upstream flags that a real box's compose file commonly passes, accepted and
    ignored (--dtype, --tensor-parallel-size, --enforce-eager, ...).

Environment, stand-in only (upstream has no such variables):
    STANDIN_LATENCY_MS (0): added to every completion before its first token
    STANDIN_FAIL_MODE: none | slow-start | error | hang | crash, faults seen on real boxes:
        slow-start  /health and /v1/* answer 503 for STANDIN_START_DELAY s (30): loading weights
        error       completions answer 500, health and model list stay fine: a broken engine
        hang        completions never answer, health stays 200: a wedged engine
        crash       the process exits 1 after STANDIN_CRASH_AFTER seconds (2): a crash loop

Runtime fault switch (stand-in only, for tests of health checks; the port is published on
loopback only): ``POST /admin/fault`` with ``{"mode": "error"}`` (or none / hang) changes the
fail mode of the running server, ``GET /admin/fault`` answers ``{"mode": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "0.6.3-standin"
# set from the arguments by configure() before the server starts
MODELS: list[str] = ["facebook/opt-125m"]  # the served names; the first one is reported
MODEL = MODELS[0]
MODEL_PATH = MODEL  # --model: what /v1/models reports as each name's root
MAX_MODEL_LEN = 4096
API_KEY: str | None = None
FAIL_MODE = os.environ.get("STANDIN_FAIL_MODE", "none").strip().lower() or "none"
START_DELAY = float(os.environ.get("STANDIN_START_DELAY", "30"))
CRASH_AFTER = float(os.environ.get("STANDIN_CRASH_AFTER", "2"))
LATENCY = float(os.environ.get("STANDIN_LATENCY_MS", "0")) / 1000.0
FAIL_MODES = ("none", "slow-start", "error", "hang", "crash")
# vllm/model_executor/layers/quantization/__init__.py QUANTIZATION_METHODS (0.6.3)
QUANTIZATION_METHODS = (
    "aqlm", "awq", "deepspeedfp", "tpu_int8", "fp8", "fbgemm_fp8", "modelopt", "marlin", "gguf",
    "gptq_marlin_24", "gptq_marlin", "awq_marlin", "gptq", "compressed-tensors", "bitsandbytes",
    "qqq", "experts_int8", "neuron_quant", "ipex",
)  # fmt: skip


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The upstream arguments this stand-in knows, with upstream's names, types and defaults
    (vllm/engine/arg_utils.py EngineArgs.add_cli_args, vllm/entrypoints/openai/cli_args.py
    make_arg_parser, 0.6.3). argparse refuses anything else: exit 2 with the usage."""
    parser = argparse.ArgumentParser(
        prog="api_server.py", description="vLLM OpenAI-Compatible RESTful API server (stand-in)."
    )
    parser.add_argument("--host", type=str, default=None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", type=str, default=None)
    parser.add_argument("--root-path", type=str, default=None)
    parser.add_argument("--uvicorn-log-level", type=str, default="info",
                        choices=["debug", "info", "warning", "error", "critical", "trace"])
    parser.add_argument("--chat-template", type=str, default=None)
    parser.add_argument("--disable-log-requests", action="store_true")
    parser.add_argument("--model", type=str, default="facebook/opt-125m")
    parser.add_argument("--served-model-name", nargs="+", type=str, default=None)
    parser.add_argument("--tokenizer", type=str, default=None)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--download-dir", type=str, default=None)
    parser.add_argument("--dtype", type=str, default="auto",
                        choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    parser.add_argument("--kv-cache-dtype", type=str, default="auto",
                        choices=["auto", "fp8", "fp8_e5m2", "fp8_e4m3"])
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--quantization", "-q", type=str, default=None,
                        choices=[*QUANTIZATION_METHODS, None])
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--swap-space", type=float, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--enable-prefix-caching", action="store_true")
    parser.add_argument("--disable-log-stats", action="store_true")
    return parser.parse_args(argv)  # fmt: skip


def configure(args: argparse.Namespace) -> None:
    """The served names, context length and key, as vLLM derives them from its arguments."""
    global MODELS, MODEL, MODEL_PATH, MAX_MODEL_LEN, API_KEY
    MODEL_PATH = args.model
    # vLLM 0.6: `served_model_names = args.served_model_name or [args.model]`
    MODELS = list(args.served_model_name or [args.model])
    MODEL = MODELS[0]
    MAX_MODEL_LEN = args.max_model_len or _model_context(args.model) or 4096
    # vLLM 0.6: `if token := envs.VLLM_API_KEY or args.api_key` (an empty one is none)
    API_KEY = os.environ.get("VLLM_API_KEY") or args.api_key or None


def _model_context(model: str) -> int | None:
    """max_position_embeddings of a local model folder's config.json, as vLLM reads it."""
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return value if isinstance(value, int) and value > 0 else None


RUNTIME_FAIL_MODES = ("none", "error", "hang")  # what POST /admin/fault may switch to

# vLLM 0.6.x's bucket boundaries, so dashboards built on the real metrics read these the same way
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


class Histogram:
    """A Prometheus histogram: cumulative buckets are computed when rendered."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.count += 1

    def render(self, name: str, labels: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}",{labels}}} {float(cumulative)}')
        lines.append(f'{name}_bucket{{le="+Inf",{labels}}} {float(self.count)}')
        lines.append(f"{name}_count{{{labels}}} {float(self.count)}")
        lines.append(f"{name}_sum{{{labels}}} {self.total}")
        return lines


class Metrics:
    """What vLLM's /metrics reports, counted for real so tests can watch it move."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {"stop": 0, "length": 0}
        self.e2e = Histogram(E2E_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)

    def render(self) -> str:
        labels = f'model_name="{MODEL}"'
        with self.lock:
            out = [
                "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{labels}}} {float(self.running)}",
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{labels}}} 0.0",
                "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.",
                "# TYPE vllm:gpu_cache_usage_perc gauge",
                # a made-up but plausible figure: each running request holds 1 % of the cache
                f"vllm:gpu_cache_usage_perc{{{labels}}} {min(1.0, self.running / 100)}",
                "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{labels}}} {float(self.prompt_tokens)}",
                "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{labels}}} {float(self.generation_tokens)}",
                "# HELP vllm:request_success_total Count of successfully processed requests.",
                "# TYPE vllm:request_success_total counter",
            ]
            for reason, n in sorted(self.success.items()):
                out.append(
                    f'vllm:request_success_total{{finished_reason="{reason}",{labels}}} {float(n)}'
                )
            out += [
                "# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency"
                " in seconds.",
                "# TYPE vllm:e2e_request_latency_seconds histogram",
                *self.e2e.render("vllm:e2e_request_latency_seconds", labels),
                "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in"
                " seconds.",
                "# TYPE vllm:time_to_first_token_seconds histogram",
                *self.ttft.render("vllm:time_to_first_token_seconds", labels),
            ]
        return "\n".join(out) + "\n"


METRICS = Metrics()
STARTED = time.monotonic()
STOPPING = threading.Event()


def model_card(name: str) -> dict[str, Any]:
    """One entry of /v1/models, with vLLM's extra fields (root, max_model_len, permission)."""
    return {
        "id": name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": MODEL_PATH,
        "parent": None,
        "max_model_len": MAX_MODEL_LEN,
        "permission": [
            {
                "id": f"modelperm-{uuid.uuid4().hex}",
                "object": "model_permission",
                "created": int(time.time()),
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


def loading() -> bool:
    """True while a slow-start engine is still "loading weights"."""
    return FAIL_MODE == "slow-start" and time.monotonic() - STARTED < START_DELAY


def text_of(content: Any) -> str:
    """Message content is a string or, for multimodal requests, a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class ApiError(Exception):
    """An error answered in vLLM's OpenAI-style error body."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive like uvicorn; every reply therefore carries a Content-Length
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn-standin"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")

    def send_body(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code: int, obj: Any) -> None:
        self.send_body(code, json.dumps(obj).encode())

    def send_error_json(self, err: ApiError) -> None:
        self.send_json(
            err.code,
            {
                "object": "error",
                "message": err.message,
                "type": err.kind,
                "param": None,
                "code": err.code,
            },
        )

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, "BadRequestError", f"Invalid JSON body: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequestError", "Request body must be a JSON object")
        return body

    def refused(self, path: str) -> bool:
        """vLLM's authentication middleware: /v1* wants the bearer token; 401 sent if not."""
        if API_KEY is None or not path.startswith("/v1"):
            return False
        if self.headers.get("Authorization") == f"Bearer {API_KEY}":
            return False
        self.send_json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.refused(path):
            return
        if path == "/metrics":
            self.send_body(200, METRICS.render().encode(), "text/plain; version=0.0.4")
        elif path == "/admin/fault":
            self.send_json(200, {"mode": FAIL_MODE})
        elif path == "/version":
            self.send_json(200, {"version": VERSION})
        elif loading() and (path == "/health" or path.startswith("/v1/")):
            self.send_error_json(ApiError(503, "ServiceUnavailableError", "Model is loading"))
        elif path == "/health":
            self.send_body(200, b"")
        elif path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [model_card(n) for n in MODELS]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        # the body is read before anything else so an early error leaves the connection clean
        try:
            body = self.read_json()
        except ApiError as err:
            self.send_error_json(err)
            return
        if self.refused(path):
            return
        if path == "/admin/fault":
            self.switch_fault(body)
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self.send_json(404, {"detail": "Not Found"})
            return
        try:
            self.complete(body, chat=path == "/v1/chat/completions")
        except ApiError as err:
            self.send_error_json(err)

    def switch_fault(self, body: dict[str, Any]) -> None:
        global FAIL_MODE
        mode = str(body.get("mode", "")).strip().lower()
        if mode not in RUNTIME_FAIL_MODES:
            self.send_error_json(
                ApiError(400, "BadRequestError", f"mode must be one of {RUNTIME_FAIL_MODES}")
            )
            return
        FAIL_MODE = mode
        print(f"fail mode switched to {mode}", flush=True)
        self.send_json(200, {"mode": FAIL_MODE})

    def complete(self, body: dict[str, Any], chat: bool) -> None:
        if loading():
            raise ApiError(503, "ServiceUnavailableError", "Model is loading")
        if "model" not in body:
            raise ApiError(400, "BadRequestError", "Field required: model")
        if body["model"] not in MODELS:
            raise ApiError(404, "NotFoundError", f"The model `{body['model']}` does not exist.")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ApiError(400, "BadRequestError", "Field required: messages")
            prompt_words = sum(
                len(text_of(m.get("content")).split()) for m in messages if isinstance(m, dict)
            )
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            echo = text_of(users[-1].get("content")) if users else ""
        else:
            prompt = body.get("prompt")
            echo = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
            prompt_words = len(echo.split())
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ApiError(400, "BadRequestError", "max_tokens must be at least 1")
        wanted = prompt_words + (max_tokens or 0)
        if wanted > MAX_MODEL_LEN:
            raise ApiError(
                400,
                "BadRequestError",
                (
                    f"This model's maximum context length is {MAX_MODEL_LEN} tokens. However, you "
                    f"requested {wanted} tokens ({prompt_words} in the messages, {max_tokens or 0} "
                    "in the completion). Please reduce the length of the messages or completion."
                ),
            )
        if FAIL_MODE == "error":
            raise ApiError(
                500,
                "InternalServerError",
                "The engine is dead: RuntimeError('CUDA error: an illegal memory access"
                " was encountered') (stand-in fault STANDIN_FAIL_MODE=error)",
            )
        words = ["ok", *echo.split()]
        finish = "stop"
        limit = max_tokens if max_tokens is not None else MAX_MODEL_LEN - prompt_words
        if len(words) > limit:
            words, finish = words[:limit], "length"

        started = time.monotonic()
        with METRICS.lock:
            METRICS.running += 1
        try:
            if FAIL_MODE == "hang":
                STOPPING.wait()  # never set while serving: the request simply never answers
                return
            time.sleep(LATENCY)
            ttft = time.monotonic() - started
            usage = {
                "prompt_tokens": prompt_words,
                "total_tokens": prompt_words + len(words),
                "completion_tokens": len(words),
            }
            if body.get("stream"):
                self.stream(chat, words, finish, usage, body)
            else:
                self.send_json(200, self.completion(chat, " ".join(words), finish, usage))
        finally:
            with METRICS.lock:
                METRICS.running -= 1
        with METRICS.lock:
            METRICS.prompt_tokens += prompt_words
            METRICS.generation_tokens += len(words)
            METRICS.success[finish] = METRICS.success.get(finish, 0) + 1
            METRICS.ttft.observe(ttft)
            METRICS.e2e.observe(time.monotonic() - started)

    @staticmethod
    def completion(chat: bool, text: str, finish: str, usage: dict[str, int]) -> dict[str, Any]:
        created = int(time.time())
        if chat:
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "logprobs": None,
                        "finish_reason": finish,
                        "stop_reason": None,
                        "message": {"role": "assistant", "content": text, "tool_calls": []},
                    }
                ],
                "usage": usage,
                "prompt_logprobs": None,
            }
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": created,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": None,
                    "prompt_logprobs": None,
                }
            ],
            "usage": usage,
        }

    def stream(
        self, chat: bool, words: list[str], finish: str, usage: dict[str, int], body: dict[str, Any]
    ) -> None:
        """Server-sent events like vLLM; the connection closes after `data: [DONE]`."""
        cid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        base = {
            "id": cid,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": MODEL,
        }

        def choice(text: str | None, reason: str | None) -> dict[str, Any]:
            if chat:
                delta = {} if text is None else {"content": text}
                return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {
                "index": 0,
                "text": text or "",
                "logprobs": None,
                "finish_reason": reason,
                "stop_reason": None,
            }

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks: list[dict[str, Any]] = []
        if chat:
            chunks.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "logprobs": None,
                            "finish_reason": None,
                            "delta": {"role": "assistant", "content": ""},
                        }
                    ],
                }
            )
        for i, word in enumerate(words):
            chunks.append({**base, "choices": [choice(word if i == 0 else f" {word}", None)]})
        chunks.append({**base, "choices": [choice(None, finish)]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # a hung handler thread (fail mode "hang", or an idle keep-alive connection) must not hold
    # up shutdown: socketserver would otherwise join every handler thread in server_close()
    block_on_close = False


def crash_later(delay: float) -> None:
    time.sleep(delay)
    print(
        f"ERROR: engine core died (stand-in fault STANDIN_FAIL_MODE=crash after {delay}s)",
        flush=True,
    )
    os._exit(1)  # no cleanup, like an engine process killed by a CUDA fault


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    configure(args)
    if FAIL_MODE not in FAIL_MODES:
        sys.exit(f"STANDIN_FAIL_MODE must be one of {', '.join(FAIL_MODES)}, not {FAIL_MODE!r}")
    # --host unset: every address, as uvicorn is started by vLLM
    host, port = args.host or "0.0.0.0", args.port
    server = Server((host, port), Handler)
    stop = threading.Event()
    # Docker sends SIGTERM to PID 1, which has no default handler there: without this,
    # `docker stop` would wait its full 10 s and then SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    if FAIL_MODE == "crash":
        threading.Thread(target=crash_later, args=(CRASH_AFTER,), daemon=True).start()
    print(
        f"vLLM stand-in {VERSION} serving {MODEL!r} (max_model_len={MAX_MODEL_LEN}) on "
        f"http://{host}:{port} fail_mode={FAIL_MODE} api_key={'set' if API_KEY else 'none'}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    print("Shutting down", flush=True)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
