"""The `sbx` command line: one module per runbook, each command a module-level function.

Every command that names a stack goes through one door (sbx/cli/runner.py: configuration,
repository location, leftovers of a killed run, the Prefect API, age keys), then starts its flow.
Heavy imports (Prefect, docker) happen inside commands, so `--help` and `status` stay fast."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer.main import get_command_name

from sbx import stopping
from sbx.cli import backups, offbox
from sbx.cli import changelog as changelog_cli
from sbx.cli import diff as diff_cli
from sbx.cli import drill as drill_cli
from sbx.cli import fleet as fleet_cli
from sbx.cli import gpu as gpu_cli
from sbx.cli import health as health_cli
from sbx.cli import init as init_cli
from sbx.cli import logs as logs_commands
from sbx.cli import model as model_cli
from sbx.cli import restore as restore_cli
from sbx.cli import serve as serve_cli
from sbx.cli import server as server_cli
from sbx.cli import status as status_cli
from sbx.cli import upgrade as upgrade_cli
from sbx.cli.incident import freeze as incident_freeze_cli
from sbx.cli.incident import preserve as incident_preserve_cli
from sbx.cli.incident import radius as incident_radius_cli
from sbx.cli.incident import recover as incident_recover_cli
from sbx.cli.incident import report as incident_report_cli
from sbx.cli.incident import run as incident_run_cli
from sbx.cli.options import err, hide_flag_types, tidy_help
from sbx.cli_runs import hold_collections
from sbx.errors import NoSpace, SbxError
from sbx.prefect_import import before_httpx_import

app = typer.Typer(
    name="sbx",
    help="Keep a private LLM sealed box healthy, backed up and recoverable. Every command that "
    "changes something runs as a Prefect flow, so the Prefect UI's run history is the audit trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
incident = typer.Typer(
    help="Incident response: freeze, preserve, blast-radius, contain, recover, report.",
    no_args_is_help=True,
)
server = typer.Typer(
    help="The local Prefect server (used when PREFECT_API_URL is unset).", no_args_is_help=True
)
model = typer.Typer(help="Model changes on a serving service.", no_args_is_help=True)
logs = typer.Typer(help="Log rotation for the stack.", no_args_is_help=True)

# registration order is the order of the help panels: backups, health, changes, operations
backups.register(app)
backups.register_checks(app)
diff_cli.register(app)
restore_cli.register(app)
offbox.register(app)
drill_cli.register(app)
incident_freeze_cli.register(incident)
incident_preserve_cli.register(incident)
incident_recover_cli.register(incident)
incident_report_cli.register(incident)
incident_run_cli.register(incident)
incident_radius_cli.register(incident)
upgrade_cli.register(app)
changelog_cli.register(app)
model_cli.register(model)
health_cli.register(app)
gpu_cli.register(app)
status_cli.register(app)
init_cli.register(app)
server_cli.register(app, server)
serve_cli.register(app)
fleet_cli.register(app)
logs_commands.register(logs)
app.add_typer(incident, name="incident", rich_help_panel="Changes")
app.add_typer(model, name="model", rich_help_panel="Changes")
app.add_typer(server, name="server", rich_help_panel="Operations")
app.add_typer(logs, name="logs", rich_help_panel="Operations")
tidy_help(app)
hide_flag_types()


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"sbx {version('sbx')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print Prefect's own log lines about a failure (the run's log in the "
            "Prefect UI always has them).",
        ),
    ] = False,
) -> None:
    """Keep a private LLM sealed box healthy, backed up and recoverable."""
    if verbose:
        os.environ["SBX_VERBOSE"] = "1"


def main() -> None:
    """Console entry point: SbxError becomes one clear message and its exit status; SIGTERM
    stops the command like Ctrl-C, undoing what it must, then one line and exit 143
    (sbx/stopping.py)."""
    hold_collections()
    stopping.install()
    before_httpx_import()
    _skip_the_last_collection()
    _register_only_the_command_asked_for(sys.argv[1:])
    try:
        app()
    except BaseException as exc:
        if stopping.is_stop(exc):  # first: an error raised while a stop unwound is the stop
            err.print(stopping.stopped_line(_command_name()), soft_wrap=True, markup=False)
            stopping.exit_now()  # worker threads may still wait on an answer: not joined
        if isinstance(exc, SbxError):
            # the message is plain text: "sbx.toml [compose] files" must not be read as markup
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            sys.exit(exc.exit_code)
        if isinstance(exc, KeyboardInterrupt):
            err.print("interrupted")
            sys.exit(130)
        if isinstance(exc, OSError):  # a full disk where no step said it more precisely
            from sbx.durable import is_no_space

            if is_no_space(exc):
                where = exc.filename or "a file of this command"
                message = str(NoSpace(where, "the command stopped there"))
                err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
                sys.exit(NoSpace.exit_code)
        raise
    finally:
        _flush_prefect_events()


def _register_only_the_command_asked_for(args: list[str]) -> None:
    """Typer builds every command before it runs one: each of the ~40 signatures read and its
    annotations evaluated, 0.1-0.15 s of every ``sbx`` command. Only the command (or group) the
    command line names is kept; without one (``sbx``, ``sbx --help``, an unknown word, shell
    completion) all stay, so help and errors list every command as before."""
    if any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ):
        return  # shell completion: the words are not in argv
    words = [arg for arg in args if arg not in ("--verbose", "-v")]  # the root's flags
    if not words or words[0].startswith("-"):
        return
    commands = [
        info
        for info in app.registered_commands
        if (info.name or get_command_name(info.callback.__name__ if info.callback else ""))
        == words[0]
    ]
    groups = [info for info in app.registered_groups if info.name == words[0]]
    if commands or groups:
        app.registered_commands = commands
        app.registered_groups = groups


def _command_name() -> str:
    """The command's words from the command line: "sbx health", "sbx incident contain"."""
    words = ["sbx"]
    for arg in sys.argv[1:3]:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(words)


def _skip_the_last_collection() -> None:
    """At interpreter exit, leave the objects alive then out of the exit's garbage collection.

    Python's exit collects garbage over every object the imports made (Prefect, pydantic's
    schemas: millions), only to free memory the process is about to hand back: 0.3–0.9 s after a
    command that ran a flow on this 2-core machine kind, the largest part of its fixed cost
    after the imports (benchmarks/cli.py). Nothing is lost: ``atexit`` runs this after Prefect
    drained its log and event queues (threading's exit hooks) and after the ``atexit``
    functions registered later; objects are still freed by reference counting; only reference
    cycles are not broken, and their memory goes back to the system with the process.
    """
    atexit.unregister(gc.freeze)  # once, however often main() runs in one process (tests)
    atexit.register(gc.freeze)


def _flush_prefect_events() -> None:
    """Wait until the events this process queued (task-run states, artifacts) are sent.

    Called as a command ends. Without it Prefect's events worker drains at interpreter exit and
    logs "Still processing items" on the operator's terminal (the flow-run heartbeat join,
    switched off in ``sbx.cli_runs``, used to give it that time). Prefect's own task runner
    flushes the same way (``wait_until_empty``).
    """
    if "prefect.events.worker" not in sys.modules:
        return  # this command ran no flow: nothing to send, and Prefect stays unimported
    from prefect.events.worker import EventsWorker

    if not getattr(EventsWorker, "_instances", None):
        return  # no event was sent: instance() would start a worker just to stop it
    EventsWorker.instance().wait_until_empty()
