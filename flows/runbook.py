"""Steps every flow that acts on a stack starts with, and run names that say what ran."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect.runtime import flow_run

from blocks.config import SbxConfig, load_config, resolve_stack_dir


def run_name(action: str) -> str:
    """e.g. ``backup-examples-stack-2026-11-26T0200``: action, stack, local time.

    The stack is its directory's name, with its parent's in front when the directory is just
    called ``stack`` (the default layout ``~/sealed-box-ai/stack``), so the run list tells boxes
    and stacks apart.
    """
    params = flow_run.parameters or {}
    return f"{action}-{stack_label(params.get('stack'))}-{datetime.now():%Y-%m-%dT%H%M}"


def stack_label(stack: object) -> str:
    path = Path(str(stack)) if stack else resolve_stack_dir(None)
    if path.name == "stack" and path.parent.name:
        return f"{path.parent.name}-{path.name}"
    return path.name


def flow_config(stack: str | None, config_file: str | None) -> SbxConfig:
    """The configuration a flow's (JSON) parameters name."""
    return load_config(Path(stack) if stack else None, Path(config_file) if config_file else None)
