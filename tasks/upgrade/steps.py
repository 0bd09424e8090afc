"""The steps of a journaled release change: switch, gate, return to the recorded release.

Shared by `sbx upgrade`, `sbx rollback` and the reconcile step that finishes an entry a killed
run left open. Every phase is written to the journal before it is acted on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from blocks.config import SbxConfig
from sbx.errors import AlertDeliveryFailed, RollbackFailed, RolledBack, SbxError
from sbx.stopping import is_stop, record_undone
from tasks.changelog import append_change
from tasks.clients.docker_engine import connect
from tasks.clients.notify import Notifier
from tasks.status import compose_for
from tasks.upgrade.data import restore_data
from tasks.upgrade.data_units import data_changed
from tasks.upgrade.gate import GateResult, run_gate
from tasks.upgrade.journal import (
    JournalEntry,
    ServiceImage,
    close_entry,
    history,
    read_open,
    release_space,
    save_open,
)
from tasks.upgrade.maintenance import clear_stale_window
from tasks.upgrade.release import retag_local, switch_images

log = logging.getLogger("sbx.upgrade")


def record_change(
    config: SbxConfig,
    action: str,
    entry: JournalEntry,
    before: dict[str, str],
    after: dict[str, str],
    outcome: str,
) -> None:
    """The one place an upgrade or rollback reaches the hash-chained change log (issue #6 #5):
    images by digest before and after, the journal entry and what came of it."""
    change = append_change(
        config.stack_dir,
        action=action,
        target=", ".join(sorted(after)),
        before={"images": before},
        after={"images": after, "journal_entry": entry.id, "outcome": outcome},
    )
    log.info("change log #%d: %s of %s (%s)", change.seq, action, change.target, outcome)


def _digests(images: dict[str, ServiceImage], services: list[str]) -> dict[str, str]:
    return {s: images[s].digest for s in services if s in images}


def apply_target(
    config: SbxConfig,
    project: str,
    entry: JournalEntry,
    after_switch: Callable[[JournalEntry], JournalEntry] | None = None,
) -> JournalEntry:
    """Run ``entry.target``, gate it; on failure return to ``entry.before`` and gate that.
    ``after_switch`` runs between the switch and the gate (a rollback's recovery of Qdrant
    collections through the old image's API); its failure fails the gate as "data restore".

    Any failure between the switch and the verdict (a gate failing, compose refusing, a full
    ``.sbx``, a dead Docker socket, a bug raising in the gate) leads to the rollback, whose first
    act frees the journal space reserved before the switch (journal.reserve_space).

    Returns the committed entry; raises RolledBack or RollbackFailed (the entry closed either
    way)."""
    stack = config.stack_dir
    entry, result, stop = _switch_and_gate(config, project, entry, after_switch)
    if result.passed:
        log.info("gate passed after %d round(s): committing %s", result.rounds, entry.id)
        closed = close_entry(stack, entry, "committed")
        release_space(stack)
        return closed
    release_space(stack)  # before any write: the rollback's own writes need this room
    log.warning("gate %s failed: %s; rolling back", result.gate, result.detail)
    entry = entry.model_copy(
        update={"phase": "rolling-back", "gate": result.gate, "detail": result.detail}
    )
    _best_effort("record the rollback phase", lambda: save_open(stack, entry))
    back, data = return_to_before(config, project, entry)
    entry = entry.model_copy(update={"data": data})
    why = f"{result.gate} failed"
    _best_effort("log the rollback", lambda: _record_return(config, entry, back, why))
    if stop is not None:  # the recorded release is back (or could not be): the stop goes on
        if back.passed:
            _best_effort("close the entry", lambda: close_entry(stack, entry, "rolled-back"))
        else:
            _best_effort("close the entry", lambda: close_entry(stack, entry, "rollback-failed"))
        outcome = "rolled back" if back.passed else "could not roll back (see the journal)"
        record_undone(f"{entry.action} {entry.id} {outcome}")
        raise stop
    if back.passed:
        _best_effort("close the entry", lambda: close_entry(stack, entry, "rolled-back"))
        raise RolledBack(result.gate or "gate", result.detail or "", entry.id, data)
    _best_effort("close the entry", lambda: close_entry(stack, entry, "rollback-failed"))
    error = RollbackFailed(back.gate or "gate", back.detail or "", entry.id)
    alert(config, "sbx upgrade: rollback failed", str(error))
    raise error


def _switch_and_gate(
    config: SbxConfig,
    project: str,
    entry: JournalEntry,
    after_switch: Callable[[JournalEntry], JournalEntry] | None,
) -> tuple[JournalEntry, GateResult, BaseException | None]:
    """The switch to ``entry.target`` and its gate: (entry, verdict, a stop signal caught)."""
    stack = config.stack_dir
    stop: BaseException | None = None
    step = "switch"
    try:
        entry = save_open(stack, entry.model_copy(update={"phase": "switched"}))
        switch_images(config, project, {s: i.digest for s, i in entry.target.items()})
        if after_switch is not None:
            step = "data restore"
            entry = after_switch(entry)
            step = "switch"
        entry = save_open(stack, entry.model_copy(update={"phase": "gating"}))
        services = sorted(entry.target)
        record_change(
            config,
            entry.action,
            entry,
            _digests(entry.before.images, services),
            _digests(entry.target, services),
            "switched, gate pending",
        )
        result = run_gate(config, services)
    except SbxError as exc:  # compose could not create or start the new containers
        result = GateResult(passed=False, rounds=0, gate=step, detail=str(exc))
    except Exception as exc:  # a full disk, a bug in the gate: the old release comes back
        detail = f"{type(exc).__name__}: {exc}"
        result = GateResult(passed=False, rounds=0, gate=f"{entry.action} step", detail=detail)
    except BaseException as exc:  # SIGTERM or Ctrl-C mid-gate: back first, then stop
        if not (is_stop(exc) or isinstance(exc, KeyboardInterrupt)):
            raise
        stop = exc
        result = GateResult(passed=False, rounds=0, gate="stop", detail="stopped by a signal")
    return entry, result, stop


def _best_effort(what: str, write: Callable[[], object]) -> None:
    """A journal write on the rollback path: its failure is logged, never raised over the
    rollback (an entry left open is finished by the next sbx command's reconcile)."""
    try:
        write()
    except OSError as exc:
        log.warning("could not %s during the rollback (%s); the next sbx command will", what, exc)


def _record_return(config: SbxConfig, entry: JournalEntry, back: GateResult, why: str) -> None:
    services = sorted(set(entry.target) | set(entry.services))
    record_change(
        config,
        "rollback",
        entry,
        _digests(entry.target, services),
        _digests(entry.before.images, services),
        f"{why}; previous release " + ("passed the gate" if back.passed else f"failed {back.gate}"),
    )


def return_to_before(
    config: SbxConfig, project: str, entry: JournalEntry
) -> tuple[GateResult, str | None]:
    """Switch the entry's services back to their recorded digests and run the same gate; for an
    upgrade, first put the pre-upgrade snapshot back where the data changed (tasks/upgrade/data.py).

    Returns the gate's result and what was done with the data (None: no upgrade entry)."""
    services = sorted(set(entry.target) | set(entry.services))
    images = {s: entry.before.images[s].digest for s in services if s in entry.before.images}
    data = None
    step = "data restore"
    try:
        changed = data_changed(config, entry) if entry.data_snapshot else []
        if entry.action == "upgrade":
            data = restore_data(config, project, entry, changed, api=False)
        step = "switch"
        switch_images(config, project, images)
        with connect() as engine:
            retag_local(engine, {s: entry.before.images[s] for s in images})
        if entry.action == "upgrade" and changed:
            step = "data restore"
            note = restore_data(config, project, entry, changed, api=True)
            data = f"{data}; {note}" if note else data
    except SbxError as exc:
        return GateResult(passed=False, rounds=0, gate=step, detail=str(exc)), data
    if data:
        log.info("data: %s", data)
    return run_gate(config, sorted(images)), data


def reconcile_open_entry(config: SbxConfig) -> JournalEntry | None:
    """Finish an entry a killed run left open by returning to its recorded release.

    Cheap when there is none (one failed open). An entry whose run still goes on is left alone.
    """
    stack = config.stack_dir
    clear_stale_window(stack)  # a killed run's maintenance.json (cheap: one failed open)
    entry = read_open(stack)
    if entry is None or entry.writer_alive():
        return None
    if any(done.id == entry.id for done in history(stack)):
        (stack / ".sbx" / "upgrade" / "open.json").unlink(missing_ok=True)  # closed, then killed
        return None
    project = compose_for(config).model().project
    log.warning(
        "journal entry %s (%s of %s) was left open at phase %s by a killed run: returning to "
        "its recorded release",
        entry.id,
        entry.action,
        ", ".join(entry.services),
        entry.phase,
    )
    release_space(stack)  # the killed run's reservation: room for the writes below
    back, data = return_to_before(config, project, entry)
    entry = entry.model_copy(update={"data": data})
    _record_return(config, entry, back, f"interrupted at phase {entry.phase}")
    detail = f"interrupted at phase {entry.phase}; reconciled"
    if back.passed:
        closed = close_entry(stack, entry, "rolled-back", gate="interrupted", detail=detail)
    else:
        closed = close_entry(
            stack, entry, "rollback-failed", gate=back.gate, detail=f"{detail}: {back.detail}"
        )
        alert(config, "sbx: rollback after an interrupted upgrade failed", closed.detail or "")
    return closed


def alert(config: SbxConfig, subject: str, body: str) -> None:
    """Tell every alert target; a delivery failure is logged, never raised over the cause."""
    notifier = Notifier()
    for name, target in config.alerts.items():
        try:
            notifier.send(target.block, subject, body)
        except AlertDeliveryFailed as exc:
            log.warning("alert to %s failed: %s", name, exc)
