"""The one door every command goes through (borg's ``with_repository`` is the model).

:func:`open_box` does, once and in this order, what each command used to repeat:

1. the configuration is loaded and validated: a bad ``sbx.toml`` stops the command here,
   before Prefect starts (exit 2);
2. the repository location is resolved: ``--repo``, else the configuration's, made absolute;
3. what a killed sbx run left behind is finished: when :func:`tasks.leftovers.left_behind`
   finds something (three ``stat`` calls otherwise), the ``reconcile-stack`` flow runs, so the
   repair is in the run history. Not for commands that must see the stack exactly as it is
   (``incident`` steps: evidence comes before any restart) or that finish an open journal
   entry themselves (``upgrade``, ``rollback``): they pass ``repair=False``;
4. the Prefect API is made ready (``PREFECT_API_URL``, else sbx's local server);
5. for commands that read a repository (``keys=True``): an encrypted one must open with the
   configured age identity, so a missing or wrong key stops here, before any flow run.

Commands then start their flow with ``box.stack_param`` and ``box.config_param``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sbx.cli.options import err
from sbx.cli_runs import release_collections

if TYPE_CHECKING:
    from blocks.config import SbxConfig


@dataclass(frozen=True)
class Box:
    """A command's view of the box once through the door."""

    stack: Path | None  # as given on the command line (None: the configured default)
    config_file: Path | None
    config: SbxConfig
    location: str  # the repository: an absolute directory or s3://bucket/prefix

    @property
    def stack_param(self) -> str | None:
        """The flows' ``stack`` parameter (JSON: a string)."""
        return str(self.stack) if self.stack else None

    @property
    def config_param(self) -> str | None:
        """The flows' ``config_file`` parameter."""
        return str(self.config_file) if self.config_file else None


def repo_location(repo: str | None, config: SbxConfig) -> str:
    """--repo, else the configuration's repository (sbx.toml / SBX_REPOSITORY__LOCATION)."""
    location = repo or config.repository.location
    if location.startswith("s3://"):
        return location
    return str(Path(location).expanduser().absolute())


def open_box(
    stack: Path | None,
    config_file: Path | None,
    *,
    repo: str | None = None,
    api: bool = True,
    repair: bool = True,
    keys: bool = False,
) -> Box:
    """Through the door: configuration, location, leftovers, API, keys (see the module doc)."""
    from blocks.config import load_config

    config = load_config(stack, config_file)
    box = Box(stack, config_file, config, repo_location(repo, config))
    if repair:
        _finish_leftovers(box)
    if api:
        from sbx.local_server import ensure_api

        ensure_api()
    if keys:
        from tasks.repository import open_encrypted

        open_encrypted(config, box.location)
    release_collections()  # start-up is done (sbx.cli_runs.hold_collections)
    return box


def _finish_leftovers(box: Box) -> None:
    from tasks.leftovers import left_behind

    if not left_behind(box.config.stack_dir):
        return
    from sbx.local_server import ensure_api

    ensure_api()
    from flows.leftovers import reconcile_stack

    err.print("a killed sbx run left this stack unfinished: finishing it first")
    report = reconcile_stack(stack=box.stack_param, config_file=box.config_param)
    err.print(report.describe(), soft_wrap=True)
