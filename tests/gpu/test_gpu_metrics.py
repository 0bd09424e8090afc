"""vLLM /metrics over HTTP (a server in a thread answering like vLLM, or failing), and the GPU
failure carrying its report through pickling, as Prefect stores a failed run's exception."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sbx.errors import GpuThresholdFailed
from tasks.clients.gpu import read_inventory
from tasks.clients.gpu_fake import FakeNvml, h100
from tasks.clients.vllm_metrics import metric_sum, read_serving_load
from tasks.gpu.check import GpuReport

METRICS = """# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a model"} 2.0
vllm:num_requests_running{model_name="other"} 1.0
vllm:num_requests_running_extra 40.0
vllm:num_requests_waiting{model_name="a model"} 5.0
"""
ANSWERS = {"/ok/metrics": (200, METRICS), "/bare/metrics": (200, "up 1\n")}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = ANSWERS.get(self.path, (404, "not found"))
        raw = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_running_and_waiting_requests_are_summed_over_label_sets(server: str) -> None:
    load = read_serving_load("worker", f"{server}/ok", timeout_s=5)
    assert load.known and load.error is None
    assert (load.requests_running, load.requests_waiting) == (3.0, 5.0)
    assert load.url == f"{server}/ok/metrics"


def test_unusable_answers_are_reasons_not_exceptions(server: str) -> None:
    assert read_serving_load("w", f"{server}/missing", timeout_s=5).error == "HTTP 404"
    bare = read_serving_load("w", f"{server}/bare", timeout_s=5)
    assert bare.error == "no vllm:num_requests_running in its /metrics" and not bare.known
    refused = read_serving_load("w", "http://127.0.0.1:9", timeout_s=5)
    assert refused.error is not None and refused.error.startswith("no answer (")
    assert read_serving_load("w", None, timeout_s=5).error == "no URL (container not running?)"


def test_metric_sum_ignores_comments_and_other_metrics() -> None:
    assert metric_sum(METRICS, "vllm:num_requests_running") == 3.0
    assert metric_sum("vllm:x 1 1700000000000\n", "vllm:x") == 1.0  # with a timestamp
    assert metric_sum(METRICS, "vllm:gpu_cache_usage_perc") is None


def test_the_threshold_failure_survives_pickling_with_its_report() -> None:
    inventory = read_inventory(FakeNvml({"gpus": [h100()]}), source="fake")
    report = GpuReport(inventory=inventory, processes=[], serving=[], checks=[])
    failure = GpuThresholdFailed(["GPU 0 temperature: 91 °C"], report)
    again = pickle.loads(pickle.dumps(failure))
    assert str(again) == str(failure) and again.report == report
    assert "1 GPU check(s) failed: GPU 0 temperature: 91 °C" in str(again)
