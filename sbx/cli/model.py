"""`sbx model swap`: one flow run that preflights, swaps, checks, and rolls back on a regression."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box


def model_swap(
    service: Annotated[str, typer.Option("--service", help="Compose service.")],
    model_id: Annotated[str, typer.Option("--model", help="Model id.")],
    quant: Annotated[
        str | None,
        typer.Option("--quant", help="vLLM --quantization (default: unchanged)."),
    ] = None,
    max_model_len: Annotated[
        int | None,
        typer.Option("--max-model-len", min=1, help="Context length (default: unchanged)."),
    ] = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Swap a service's model after a capacity preflight; roll back on regressions.

    Edits the variables compose interpolates into the service's --model and
    --served-model-name (env/stack.env on the example). The model directory is
    data/models/<last part of the model id>. Exit 0 when swapped; 1 when refused by the
    preflight (nothing changed) or rolled back (previous model back).
    """
    box = open_box(stack, config, api=False)
    from tasks.gpu.model_wiring import find_wiring

    # a service whose model no variable sets: exit 2 before any flow run
    find_wiring(box.config, service, model_id)
    from sbx.local_server import ensure_api

    ensure_api()
    from flows.model_swap import swap_model

    report = swap_model(
        service=service,
        model=model_id,
        quant=quant,
        max_model_len=max_model_len,
        stack=box.stack_param,
        config_file=box.config_param,
    )
    if json_:
        out.print_json(report.model_dump_json())
    err.print(
        f"[green]swapped[/]: {escape(service)} serves {escape(str(report.after.served))} "
        f"(was {escape(str(report.before.served))}); env kept as {escape(report.env_kept_as)}",
        soft_wrap=True,
    )


def register(model: typer.Typer) -> None:
    model.command("swap")(model_swap)
