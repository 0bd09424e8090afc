"""`sbx logs setup`: the logrotate(8) twin of sbx's rotation, and json-file logging for compose.

Both are for operators who prefer the classic tools; they are written next to the stack, never
into the user's own compose file:

- ``<stack>/.sbx/logrotate.conf`` (or a path given): copytruncate, size/age, rotate N, compress —
  the same policy as ``[logs]``. logrotate's copytruncate can lose the lines a writer appends
  between its copy and its truncate; the file says so.
- ``docker-compose.logging.yml`` next to the compose file: ``logging: json-file`` with
  ``max-size``/``max-file`` for every service, checked with ``docker compose config``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from blocks.config import LogsConfig, SbxConfig
from sbx.durable import is_no_space, write_atomic
from sbx.errors import NoSpace, StackError
from tasks.changelog import append_change, room_for_changes
from tasks.clients.compose import COMPOSE_FILE_NAMES, ComposeCli

OVERRIDE_NAME = "docker-compose.logging.yml"
_PERIODS = ((1.0, "hourly"), (24.0, "daily"), (168.0, "weekly"), (730.0, "monthly"))


class LogsSetup(BaseModel):
    """What `sbx logs setup` wrote."""

    model_config = ConfigDict(frozen=True)

    logrotate_file: Path
    override_file: Path | None
    compose_files: list[str]  # the files to pass with -f, override last
    services: list[str]


def logrotate_patterns(stack_dir: Path, globs: list[str]) -> list[str]:
    """Absolute glob(3) patterns: logrotate has no '**', so each existing directory is listed."""
    patterns: list[str] = []
    for pattern in globs:
        head, sep, tail = pattern.partition("**/")
        if not sep:
            patterns.append(str(stack_dir / pattern))
            continue
        base = stack_dir / head
        dirs = [base, *sorted(p for p in base.rglob("*") if p.is_dir())] if base.is_dir() else []
        patterns += [str(d / tail) for d in dirs or [base]]
    return list(dict.fromkeys(patterns))


def logrotate_conf(stack_dir: Path, settings: LogsConfig) -> str:
    period = min(_PERIODS, key=lambda item: abs(item[0] - settings.max_age_h))
    size = settings.max_size
    mib, kib = 1 << 20, 1 << 10
    maxsize = (
        f"{size // mib}M"
        if size % mib == 0
        else f"{size // kib}k"
        if size % kib == 0
        else str(size)
    )
    lines = [
        f"# Written by 'sbx logs setup' for {stack_dir}: the logrotate(8) equivalent of [logs]",
        "# (sbx's daily 'rotate-logs' deployment). Use one or the other, not both.",
        f"# Install: cp this file /etc/logrotate.d/sbx-{stack_dir.name} (logrotate runs daily from",
        "# cron or its systemd timer; 'maxsize' is checked only when it runs).",
        "# Caveat: copytruncate loses the lines a writer appends between logrotate's copy and its",
        "# truncate. sbx's rotation does not ('sbx logs rotate': it cuts the copied lines out with",
        "# fallocate after a verified copy).",
    ]
    if period[0] != settings.max_age_h:
        lines.append(f"# max_age_h = {settings.max_age_h:g} has no logrotate period: {period[1]}.")
    if any("**" in g for g in settings.globs):
        lines.append("# '**' listed per directory: run 'sbx logs setup' again after adding one.")
    quoted = " ".join(json.dumps(p) for p in logrotate_patterns(stack_dir, settings.globs))
    lines += [
        f"{quoted} {{",
        f"    {period[1]}",
        f"    maxsize {maxsize}",
        f"    rotate {settings.keep}",
        "    copytruncate",
        "    missingok",
        "    notifempty",
        "    dateext",
        "    dateformat -%Y%m%d-%s",
    ]
    if settings.compress == "zstd":
        zstd = shutil.which("zstd") or "/usr/bin/zstd"
        lines += [
            "    compress",
            f"    compresscmd {zstd}",
            f"    uncompresscmd {shutil.which('unzstd') or '/usr/bin/unzstd'}",
            "    compressoptions -q -3",
            "    compressext .zst",
        ]
    elif settings.compress == "gzip":
        lines.append("    compress")
    else:
        lines.append("    nocompress")
    lines.append("}")
    return "\n".join(lines) + "\n"


def compose_override(services: list[str], settings: LogsConfig) -> str:
    lines = [
        "# Written by 'sbx logs setup': json-file log rotation for every service of the stack.",
        "# Enable it by naming it after your compose file(s), e.g.:",
        f"#   docker compose -f docker-compose.yml -f {OVERRIDE_NAME} up -d",
        "services:",
    ]
    for name in services:
        lines += [
            f"  {json.dumps(name)}:",
            "    logging:",
            "      driver: json-file",
            "      options:",
            f"        max-size: {json.dumps(settings.docker_max_size)}",
            f"        max-file: {json.dumps(str(settings.docker_max_file))}",
        ]
    return "\n".join(lines) + "\n"


def base_compose_files(config: SbxConfig) -> list[str]:
    """The files compose reads without -f: [compose] files, COMPOSE_FILE, or its defaults."""
    if config.compose.files:
        return [f for f in config.compose.files if Path(f).name != OVERRIDE_NAME]
    stack = config.stack_dir
    listed = os.environ.get("COMPOSE_FILE") or _dotenv(stack / ".env").get("COMPOSE_FILE")
    if listed:
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [f for f in listed.split(separator) if f and Path(f).name != OVERRIDE_NAME]
    main = next((n for n in COMPOSE_FILE_NAMES if (stack / n).is_file()), None)
    if main is None:
        raise StackError(
            f"No compose file in {stack} (looked for {', '.join(COMPOSE_FILE_NAMES)}). Pass "
            "--stack DIR pointing at the stack, or set compose.files in sbx.toml."
        )
    stem = Path(main).stem  # compose loads <name>.override.<ext> too, unless -f is given
    overrides = [
        n for n in (f"{stem}.override.yml", f"{stem}.override.yaml") if (stack / n).is_file()
    ]
    return [main, *overrides[:1]]


def write_setup(config: SbxConfig, logrotate_file: Path | None, *, compose: bool) -> LogsSetup:
    """Write both files; the override is kept only once ``docker compose config`` accepts it.

    A full disk refuses before either file changes: room for the change log is held first, and
    a file that cannot be written is left as it was (a temporary beside it is removed)."""
    stack = config.stack_dir
    target = logrotate_file or stack / ".sbx" / "logrotate.conf"
    with room_for_changes(stack):
        try:
            _write_recorded(stack, target, logrotate_conf(stack, config.logs))
        except OSError as exc:
            if not is_no_space(exc):
                raise
            raise NoSpace(target, "nothing was changed") from exc
        return _write_override(config, stack, target) if compose else _no_override(target)


def _no_override(target: Path) -> LogsSetup:
    return LogsSetup(logrotate_file=target, override_file=None, compose_files=[], services=[])


def _write_override(config: SbxConfig, stack: Path, target: Path) -> LogsSetup:
    base = base_compose_files(config)
    services = sorted(
        ComposeCli(stack, project=config.compose.project, files=base).model().services
    )
    override = stack / OVERRIDE_NAME
    before = _digest(override)
    _write_atomic(override, compose_override(services, config.logs))
    files = [*base, OVERRIDE_NAME]
    try:
        check_override(stack, config.compose.project, files, config.logs)
    except BaseException:
        override.unlink(missing_ok=True)
        raise
    _record(stack, override, before)
    return LogsSetup(
        logrotate_file=target, override_file=override, compose_files=files, services=services
    )


def check_override(
    stack: Path, project: str | None, files: list[str], settings: LogsConfig
) -> None:
    """`docker compose config` with the override: every service logs to json-file, bounded."""
    cli = ComposeCli(stack, project=project, files=files)
    done = cli.run(
        "config",
        "--format",
        "json",
        next_step=f"{stack / OVERRIDE_NAME} was not kept; report this as a bug in sbx.",
    )
    want = {"max-size": settings.docker_max_size, "max-file": str(settings.docker_max_file)}
    for name, spec in json.loads(done.stdout).get("services", {}).items():
        logging = spec.get("logging") or {}
        options = logging.get("options") or {}
        if logging.get("driver") != "json-file" or any(
            options.get(k) != v for k, v in want.items()
        ):
            raise StackError(
                f"docker compose config shows service {name} logging as {logging}, expected "
                f"json-file with {want}; {OVERRIDE_NAME} was not kept. Check the compose files "
                f"{', '.join(files)}."
            )


def _dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (enough for COMPOSE_FILE)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip().strip("'\"") for k, _, v in pairs if not k.startswith("#")}


def _write_recorded(stack: Path, path: Path, text: str) -> None:
    before = _digest(path)
    _write_atomic(path, text)
    _record(stack, path, before)


def _record(stack: Path, path: Path, before: str | None) -> None:
    """A configuration file sbx wrote goes into the change log when its content changed."""
    after = _digest(path)
    if after != before:
        shown = path.relative_to(stack) if path.is_relative_to(stack) else path
        append_change(
            stack, action="config", target=f"logs setup: {shown}", before=before, after=after
        )


def _digest(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, text, fsync=False)
