"""Free space on the filesystems of the stack and of the repository (when it is on the box)."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

from blocks.config import SbxConfig
from tasks.health.checks import Check, Outcome, failing, info, ok

GiB = 1 << 30


def plan(config: SbxConfig, repository: str) -> list[Check]:
    return [
        Check("disk", "stack", partial(_observe, config.stack_dir, config, "the stack")),
        Check("disk", "repository", partial(_repository, repository, config)),
    ]


def _repository(location: str, config: SbxConfig) -> Outcome:
    if location.startswith("s3://"):
        return info(f"repository {location} is not on this box")
    path = Path(location).expanduser()
    # a repository not made yet: its free space is that of the nearest existing parent
    while not path.exists() and path != path.parent:
        path = path.parent
    return _observe(path, config, f"the repository {location}")


def _observe(path: Path, config: SbxConfig, what: str) -> Outcome:
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return failing(f"cannot read free space of {path}: {exc.strerror}", "Check the mount.")
    free_pct = usage.free / usage.total * 100 if usage.total else 0.0
    observed = f"{usage.free / GiB:.1f} GiB free of {usage.total / GiB:.1f} GiB ({free_pct:.0f} %)"
    measures = {"free_bytes": float(usage.free), "size_bytes": float(usage.total)}
    limits = config.health
    if free_pct < limits.disk_min_free_percent or usage.free < limits.disk_min_free_gib * GiB:
        return failing(
            f"{observed} on {path}: below {limits.disk_min_free_percent:g} % or "
            f"{limits.disk_min_free_gib:g} GiB",
            f"Free space for {what}: 'sbx prune' old snapshots, rotate logs, or grow the disk.",
            **measures,
        )
    return ok(observed, **measures)
