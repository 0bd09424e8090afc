"""The task runner of read-only flows that run checks concurrently (health, blast radius).

Prefect's ``ThreadPoolTaskRunner`` waits for every running task when its flow ends, also when
the flow is being stopped: a SIGTERM during ``sbx health`` against a trickling service waited
for each probe's deadline (minutes) before the command could end. This runner waits as usual
when the flow ends normally or with an error, and not at all when it is stopped (SIGTERM,
Ctrl-C: a BaseException that is no Exception): the tasks it abandons only read, and the process
exits without joining them (sbx/stopping.py). Flows whose tasks change something keep running
their tasks in the flow's thread, where the stop reaches their ``finally``.
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner


class StoppableTaskRunner(ThreadPoolTaskRunner[Any]):
    """``ThreadPoolTaskRunner`` that does not wait for its tasks when the flow is stopped."""

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            for event in self._cancel_events.values():
                event.set()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
        super().__exit__(exc_type, exc_value, traceback)


def stoppable_task_runner() -> TaskRunner[Any]:
    """A :class:`StoppableTaskRunner` typed as the ``@flow`` decorator takes it."""
    return StoppableTaskRunner()
