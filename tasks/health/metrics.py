"""The last health report as Prometheus text (node_exporter's textfile collector format).

    sbx_health_check_ok{check,family,target}         1 ok or info, 0 failing or suppressed
    sbx_health_check_state{check,state}               1 for the check's current state
    sbx_health_check_duration_seconds{check}          how long the check took
    sbx_health_<measure>{check,family,target}         each number a check measured:
        latency_seconds, snapshot_age_seconds, free_bytes, cpu_percent, memory_bytes, ...
    sbx_health_last_run_timestamp_seconds, sbx_health_run_duration_seconds, sbx_health_ok

The file is written atomically (temporary file, then rename), as the collector requires.
Every health run also keeps its report in ``<stack>/.sbx/health-last.json``;
``sbx health --serve-metrics PORT`` serves that (re-read on each scrape, so the scheduled runs
keep it fresh) on ``http://127.0.0.1:PORT/metrics``, with ``sbx_health_report_age_seconds``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tasks.health.model import CheckResult, HealthReport

LAST_REPORT = Path(".sbx") / "health-last.json"

STATES = ("ok", "failing", "info", "suppressed")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(check: CheckResult, **extra: str) -> str:
    pairs = {"check": check.id, "family": check.family, "target": check.target, **extra}
    return ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items())


def render(report: HealthReport) -> str:
    stack = f'stack="{_label(str(report.stack_dir))}"'
    lines = [
        "# HELP sbx_health_ok 1 when no health check fails.",
        "# TYPE sbx_health_ok gauge",
        f"sbx_health_ok{{{stack}}} {int(report.ok)}",
        "# HELP sbx_health_last_run_timestamp_seconds When the last health run started.",
        "# TYPE sbx_health_last_run_timestamp_seconds gauge",
        f"sbx_health_last_run_timestamp_seconds{{{stack}}} {report.started_at.timestamp():.3f}",
        "# HELP sbx_health_run_duration_seconds How long the last health run took.",
        "# TYPE sbx_health_run_duration_seconds gauge",
        f"sbx_health_run_duration_seconds{{{stack}}} {report.duration_s:.3f}",
        "# HELP sbx_health_check_ok 1 when the check passes (or does not apply), else 0.",
        "# TYPE sbx_health_check_ok gauge",
        *(f"sbx_health_check_ok{{{_labels(c)}}} {int(not c.failed)}" for c in report.checks),
        "# HELP sbx_health_check_state The check's state (one series per state).",
        "# TYPE sbx_health_check_state gauge",
        *(
            f"sbx_health_check_state{{{_labels(c, state=s)}}} {int(c.state == s)}"
            for c in report.checks
            for s in STATES
        ),
        "# HELP sbx_health_check_duration_seconds How long the check took.",
        "# TYPE sbx_health_check_duration_seconds gauge",
        *(
            f"sbx_health_check_duration_seconds{{{_labels(c)}}} {c.duration_ms / 1000:.4f}"
            for c in report.checks
        ),
    ]
    names = sorted({m for c in report.checks for m in c.measures})
    for name in names:
        metric = "sbx_health_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
        lines += [f"# TYPE {metric} gauge"]
        lines += [
            f"{metric}{{{_labels(c)}}} {c.measures[name]:g}"
            for c in report.checks
            if name in c.measures
        ]
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, report: HealthReport) -> None:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(path)


def save_last_report(stack_dir: Path, report: HealthReport) -> None:
    path = stack_dir / LAST_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(report.model_dump_json(), encoding="utf-8")
    tmp.replace(path)


def last_report_metrics(stack_dir: Path) -> str | None:
    """Prometheus text of the newest saved report, with its age; None when there is none."""
    try:
        report = HealthReport.model_validate_json((stack_dir / LAST_REPORT).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
    age = time.time() - report.started_at.timestamp()
    stack = f'stack="{_label(str(report.stack_dir))}"'
    return render(report) + (
        "# HELP sbx_health_report_age_seconds Age of the health report these metrics come from.\n"
        "# TYPE sbx_health_report_age_seconds gauge\n"
        f"sbx_health_report_age_seconds{{{stack}}} {age:.1f}\n"
    )


def metrics_server(stack_dir: Path, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server (not started) answering GET /metrics from the newest saved report."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 15 s would flood the terminal

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._send(404, b"only /metrics here\n")
                return
            text = last_report_metrics(stack_dir)
            if text is None:
                self._send(503, b"no health report yet: run 'sbx health'\n")
                return
            self._send(200, text.encode())

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer((host, port), Handler)
