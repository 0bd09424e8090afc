"""Retry policy of sbx tasks: retry only what can get better by waiting (``SbxError.retryable``)."""

from __future__ import annotations

from typing import Any

from sbx.errors import is_retryable


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: integrity and configuration errors are never retried."""
    try:
        state.result()
    except Exception as exc:
        return is_retryable(exc)
    return False
