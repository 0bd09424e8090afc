"""The fault suite's figures: the project's reliability claims (issue #9), counted while it runs.

Every fault test records what it tried and what it found through the session-wide ``fault_figures``
fixture; the suite's conftest prints the totals at the end of the pytest run and writes them as JSON
to ``$SBX_FAULT_FIGURES`` when that is set (the README quotes a CI run's figures).

A test still asserts its own outcome (a partial snapshot fails that test); the figures are the
summary an operator reads, not the check.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class FaultFigures:
    trials_run: int = 0  # crash trials (SIGKILL / SIGTERM) and environment faults injected
    partial_snapshots: int = 0  # snapshots listed that were not complete (must stay 0)
    services_left_stopped: int = 0  # services still stopped after the next sbx command (0)
    bad_inputs_tried: int = 0  # crafted repositories, manifests, configs, CLI arguments
    bad_inputs_refused: int = 0  # ... of which refused with a clear error (must equal tried)
    canary_hits: int = 0  # planted secret values found in anything the suite produced (0)
    harness_examples: int = 0  # trees the correctness harness backed up and restored (#18)
    hostile_examples: int = 0  # hostile inputs tried: forged lines, trickling servers (#23)
    peak_rss_mib: float = 0.0  # highest peak RSS of an sbx process measured by the suite
    by_test: dict[str, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, test: str, **counts: float) -> None:
        """Add counts (``trials_run=12, partial_snapshots=0``) under the test's name."""
        with self._lock:
            mine = self.by_test.setdefault(test, {})
            for name, value in counts.items():
                if name == "peak_rss_mib":
                    self.peak_rss_mib = max(self.peak_rss_mib, float(value))
                    mine[name] = max(mine.get(name, 0.0), float(value))
                    continue
                if name not in TOTALS:
                    raise KeyError(f"unknown fault figure {name!r}; one of {TOTALS}")
                setattr(self, name, getattr(self, name) + int(value))
                mine[name] = mine.get(name, 0) + value

    def totals(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in (*TOTALS, "peak_rss_mib")}

    def summary_lines(self) -> list[str]:
        t = self.totals()
        return [
            f"trials run: {t['trials_run']}",
            f"snapshots found partial: {t['partial_snapshots']} (must be 0)",
            f"services left stopped: {t['services_left_stopped']} (must be 0)",
            f"bad inputs tried / refused: {t['bad_inputs_tried']} / {t['bad_inputs_refused']}",
            f"canary hits: {t['canary_hits']} (must be 0)",
            f"harness examples run: {t['harness_examples']} ({self._harness_by_property()})",
            f"hostile inputs tried: {t['hostile_examples']}",
            f"peak RSS: {t['peak_rss_mib']:.0f} MiB",
        ]

    def _harness_by_property(self) -> str:
        counts = [f"{test} {n['harness_examples']:.0f}" for test, n in sorted(self.by_test.items())
                  if "harness_examples" in n]  # fmt: skip
        return ", ".join(counts) or "harness not run"

    def write_json(self, path: Path) -> None:
        data = {**self.totals(), "by_test": self.by_test}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


TOTALS = (
    "trials_run",
    "partial_snapshots",
    "services_left_stopped",
    "bad_inputs_tried",
    "bad_inputs_refused",
    "canary_hits",
    "harness_examples",
    "hostile_examples",
)

# one per run: the fault suite and the correctness harness (tests/harness) both add to it
FIGURES = FaultFigures()
_reported: list[bool] = []


def report_figures(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures at the end of the run (once, whichever conftest asks first), and
    write them to ``$SBX_FAULT_FIGURES`` when that is set."""
    if _reported or not FIGURES.by_test:
        return
    _reported.append(True)
    terminalreporter.section("sbx fault suite figures")
    for line in FIGURES.summary_lines():
        terminalreporter.write_line(line)
    out = os.environ.get("SBX_FAULT_FIGURES")
    if out:
        FIGURES.write_json(Path(out))
        terminalreporter.write_line(f"figures written to {out}")
