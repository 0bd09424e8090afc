"""`sbx incident freeze|unfreeze` on a running copy of the example stack.

The stack (one bring-up for every test here) runs ``worker`` and the proxy stand-in published on
0.0.0.0 (SBX_PROXY_BIND); the default configuration marks ``proxy`` as the box's exposure.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bed import RunningStack, wait_until
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

from flows.incident.freeze import freeze_incident, unfreeze_incident
from sbx.errors import FreezeIncomplete, UnfreezeRefused
from tasks.changelog import read_changes
from tasks.incident.record import read_actions

from .incident_bed import accepts_tcp, incident_cli, proxy_port


def test_freeze_closes_the_port_and_unfreeze_needs_yes(
    frozen_clean: RunningStack, prefect_server: str
) -> None:
    stack = frozen_clean
    port = proxy_port(stack)
    assert wait_until(lambda: accepts_tcp(port), timeout=30)

    done = incident_cli(prefect_server, "freeze", stack=stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped" in done.stderr and "proxy" in done.stderr
    assert not accepts_tcp(port), "the proxy's port still accepts connections after freeze"

    again = freeze_incident(stack=str(stack.path))  # in-process: a CLI start costs ~10 s in CI
    assert again.stopped == [] and again.already_stopped == [f"{stack.project}-proxy-1"]

    refused = incident_cli(prefect_server, "unfreeze", stack=stack)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Unfreeze refused" in refused.stderr and "--yes" in refused.stderr
    assert not accepts_tcp(port)

    done = incident_cli(prefect_server, "unfreeze", "--yes", stack=stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_until(lambda: accepts_tcp(port), timeout=30), "the proxy did not come back"

    incident = done.stdout.split()[1]
    steps = [(a.step, a.ok) for a in read_actions(stack.path, incident)]
    assert steps == [("freeze", True), ("freeze", True), ("unfreeze", True)]
    changes = [c.action for c in read_changes(stack.path)]
    assert changes[-2:] == [
        "incident-freeze",
        "incident-unfreeze",
    ]  # the 2nd freeze changed nothing


def test_freeze_fails_naming_a_container_still_published(
    frozen_clean: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    # the proxy not marked as exposure: freeze leaves it running, and its check must say so
    config = tmp_path / "sbx.toml"
    config.write_text("[services.proxy]\nexposure = false\n")
    with pytest.raises(FreezeIncomplete) as caught:
        freeze_incident(stack=str(frozen_clean.path), config_file=str(config))
    assert f"{frozen_clean.project}-proxy-1 still publishes 0.0.0.0:" in str(caught.value)
    assert accepts_tcp(proxy_port(frozen_clean))
    actions = read_actions(frozen_clean.path, _current(frozen_clean.path))
    assert [(a.step, a.ok) for a in actions] == [("freeze", False)]


def _current(stack: Path) -> str:
    from tasks.incident.record import current_incident

    info = current_incident(stack)
    assert info is not None
    return info.id


def _paused_unfreeze_run() -> str | None:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["incident-unfreeze"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
        )
    return str(runs[0].id) if runs else None


def _unfreeze_in_thread(stack: Path) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(
                unfreeze_incident(stack=str(stack), confirm_timeout_s=300, poll_interval_s=1)
            )
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_unfreeze_from_the_ui_waits_for_the_operator(
    frozen_clean: RunningStack, prefect_server: str
) -> None:
    from uuid import UUID

    stack = frozen_clean
    port = proxy_port(stack)
    freeze_incident(stack=str(stack.path))
    assert not accepts_tcp(port)

    # no confirmation given: the run pauses with a form; answering "no" starts nothing
    thread, outcome = _unfreeze_in_thread(stack.path)
    assert wait_until(lambda: _paused_unfreeze_run() is not None, timeout=120)
    paused = _paused_unfreeze_run()
    assert paused is not None
    resume_flow_run(UUID(paused), run_input={"confirm": False})
    thread.join(timeout=120)
    assert outcome and isinstance(outcome[0], UnfreezeRefused), outcome
    assert not accepts_tcp(port)

    # ticked: the proxy starts again
    thread, outcome = _unfreeze_in_thread(stack.path)
    assert wait_until(lambda: _paused_unfreeze_run() is not None, timeout=120)
    paused = _paused_unfreeze_run()
    assert paused is not None
    resume_flow_run(UUID(paused), run_input={"confirm": True})
    thread.join(timeout=120)
    assert outcome and not isinstance(outcome[0], Exception), outcome
    assert wait_until(lambda: accepts_tcp(port), timeout=30)
    steps = [(a.step, a.ok) for a in read_actions(stack.path, _current(stack.path))]
    assert steps == [("freeze", True), ("unfreeze", False), ("unfreeze", True)]
