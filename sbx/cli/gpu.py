"""`sbx gpu`: the GPU readings and checks (a Prefect flow run), and `--fit`, the capacity
preflight of a model directory (read-only and fast, so it runs directly, without Prefect)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box

_STYLE = {"pass": "green", "info": "dim", "warn": "yellow", "unknown": "yellow", "fail": "red"}


def gpu(
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    fit: Annotated[
        Path | None,
        typer.Option(
            "--fit",
            metavar="MODEL_DIR",
            help="Capacity preflight: does this model (directory or .gguf) fit vLLM's budget?",
        ),
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(min=1, help="Context length for --fit (required with it).")
    ] = None,
    max_num_seqs: Annotated[
        int, typer.Option(min=1, help="Concurrent full-length sequences for --fit.")
    ] = 1,
    kv_cache_dtype: Annotated[
        str, typer.Option(help="KV cache dtype for --fit (auto: the model's).")
    ] = "auto",
    gpu_index: Annotated[
        int | None, typer.Option("--gpu", help="GPU for --fit (default: most free memory).")
    ] = None,
    free_gib: Annotated[
        float | None,
        typer.Option(help="For --fit: compare with this much free memory instead of a GPU."),
    ] = None,
    replacing: Annotated[
        str | None,
        typer.Option(
            help="For --fit: count the GPU memory this service's processes hold as free "
            "(the model it replaces gives it back), and use its --gpu-memory-utilization."
        ),
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="For --fit: vLLM's fraction of the GPU (default: the --replacing service's, "
            "else vLLM's 0.9).",
        ),
    ] = None,
) -> None:
    """GPU memory, utilisation, temperature, throttling, ECC/XIDs and processes by service.

    Exit 1 when a threshold of sbx.toml's gpu section fails; 0 with "no GPU" on a box without
    an NVIDIA driver.
    With --fit MODEL --max-model-len N (MODEL a directory or a .gguf file): exit 0 when it fits
    in total × --gpu-memory-utilization and vLLM would start beside what else holds the GPU, 1
    when not, 2 when that cannot be known (no model shape, no GPU and no --free-gib).
    """
    door = open_box(stack, config, api=False)  # a bad configuration stops here, before a run
    box = door.config
    if fit is not None:
        if max_model_len is None:
            raise typer.BadParameter("--fit needs --max-model-len", param_hint="--fit")
        code = _fit(
            box,
            fit,
            max_model_len,
            max_num_seqs=max_num_seqs,
            kv_cache_dtype=kv_cache_dtype,
            gpu_index=gpu_index,
            replacing=replacing,
            gpu_memory_utilization=gpu_memory_utilization,
            free_gib=free_gib,
            json_=json_,
        )
        raise typer.Exit(code)
    from sbx.local_server import ensure_api

    ensure_api()  # only now: --fit answers without Prefect
    from flows.gpu import inspect_gpus
    from sbx.errors import GpuThresholdFailed

    try:
        report = inspect_gpus(stack=door.stack_param, config_file=door.config_param)
    except GpuThresholdFailed as exc:
        from tasks.gpu.check import GpuReport

        assert isinstance(exc.report, GpuReport)
        report = exc.report
    if json_:
        out.print_json(report.model_dump_json())
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Health")(gpu)


def _fit(
    box: Any,
    model_dir: Path,
    max_model_len: int,
    *,
    max_num_seqs: int,
    kv_cache_dtype: str,
    gpu_index: int | None,
    replacing: str | None,
    gpu_memory_utilization: float | None,
    free_gib: float | None,
    json_: bool,
) -> int:
    from tasks.gpu.capacity import GiB
    from tasks.gpu.check import preflight_on_box

    verdict = preflight_on_box(
        box,
        model_dir.expanduser().absolute(),
        max_model_len,
        max_num_seqs=max_num_seqs,
        kv_cache_dtype=kv_cache_dtype,
        gpu_index=gpu_index,
        replacing=replacing,
        gpu_memory_utilization=gpu_memory_utilization,
        free_bytes=int(free_gib * GiB) if free_gib is not None else None,
    )
    if json_:
        out.print_json(verdict.model_dump_json())
    else:
        style = {"fits": "green", "does not fit": "red"}.get(verdict.verdict, "yellow")
        out.print(f"[{style}]{verdict.verdict}[/]: {escape(verdict.message)}", soft_wrap=True)
    return {"fits": 0, "does not fit": 1}.get(verdict.verdict, 2)


def _print_report(report: Any) -> None:
    from rich import box
    from rich.table import Table

    from tasks.gpu.report import gpu_rows, summary

    rows = gpu_rows(report)
    if report.inventory.available:
        table = Table(title=summary(report), title_justify="left", box=box.SIMPLE_HEAD)
        for column in rows[0] if rows else ["gpu"]:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(row.get(c, ""))) for c in rows[0]))
        out.print(table)
    else:
        out.print(summary(report))
    for check in report.checks:
        if check.status in ("pass",) or (check.status == "info" and not report.inventory.available):
            continue
        where = f"GPU {check.gpu} " if check.gpu is not None else ""
        style = _STYLE[check.status]
        err.print(
            f"[{style}]{check.status}[/] {escape(f'{where}{check.name}: {check.message}')}",
            soft_wrap=True,
        )
    if report.ok and report.inventory.available:
        warned = sum(c.status in ("warn", "unknown") for c in report.checks)
        out.print(f"[green]ok[/]: {len(report.checks)} GPU checks, {warned} warning(s)")
    sys.stdout.flush()
