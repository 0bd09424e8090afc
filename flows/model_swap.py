"""Model swap runbook: preflight, edit env, restart, prompt suite; roll back on a regression."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from flows.runbook import flow_config, run_name
from sbx.errors import ModelSwapRolledBack
from tasks.changelog import append_change, room_for_changes
from tasks.gpu.capacity import CapacityVerdict
from tasks.gpu.model_swap import (
    Prompt,
    SuiteResult,
    edit_env,
    load_prompts,
    preflight_swap,
    restart_service,
    run_prompt_suite,
    served_now,
    service_key,
    service_status,
    swap_plan,
    wait_model_ready,
    write_env,
)
from tasks.gpu.model_wiring import find_wiring
from tasks.reports import artifact_key, publish_markdown
from tasks.upgrade.data import TAG
from tasks.upgrade.data_units import data_parts
from tasks.vllm_args import ServedModel


class SwapReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    service: str
    env_file: str  # the file of variables the swap edited (relative to the stack)
    before: ServedModel
    after: ServedModel
    outcome: str  # "swapped" | "rolled back: <why>"
    preflight: CapacityVerdict
    baseline: SuiteResult | None
    suite: SuiteResult | None
    env_kept_as: str
    data_snapshot: str | None = None  # the pre-upgrade snapshot of the service's data parts


@flow(name="swap-model", flow_run_name=lambda: run_name("model-swap"), log_prints=False)
def swap_model(
    service: str,
    model: str,
    quant: str | None = None,
    max_model_len: int | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> SwapReport:
    """Swap the model a vLLM service serves, checked before and after.

    Refused, with the numbers, when the capacity preflight says the new model does not fit the
    GPU (counting the memory the old model gives back). Otherwise the variables compose
    interpolates into the service's --model, --served-model-name (and, when given,
    --quantization, --max-model-len) are edited where the box sets them (env/stack.env on the
    example; the previous file kept beside it), the service is recreated and must list the new
    model, and the prompt suite (prompts.yaml) runs: if a prompt that passed on the old model
    fails, or the model never loads, the previous file is put back and the service restarted
    on it. Either way the change log gets an entry. Before anything changes, the service's data
    parts (not its immutable models) are backed up, tagged pre-upgrade, as an upgrade does.
    """
    config = flow_config(stack, config_file)
    log = get_run_logger()
    wiring = find_wiring(config, service, model)
    path = wiring.env_file
    original = path.read_text()
    before = wiring.current
    updates, after = swap_plan(wiring, model, quant, max_model_len)
    new_text = edit_env(original, updates)
    served = after.served or model
    env_rel = wiring.relative_env(config.stack_dir)
    verdict = preflight_swap(config, service, model, after.max_model_len or 4096)
    log.info("preflight: %s", verdict.message)
    prompts = load_prompts(config)
    old = service_status(config, service)
    baseline = (
        run_prompt_suite(old.url or "", before.served or "", prompts, old.credentials.api_key)
        if old
        else None
    )
    kept = path.with_name(f"{path.name}.pre-swap-{datetime.now():%Y%m%dT%H%M%S}")
    data_snapshot = _snapshot_data(config, stack, config_file, service)
    with room_for_changes(config.stack_dir):  # a full .sbx refuses here, nothing changed
        write_env(path, new_text, keep_as=kept)
        suite, why = None, None
        ready_s = config.model_swap_ready_timeout_s
        try:
            suite, why = _try_new_model(config, service, served, env_rel, prompts, baseline)
        except BaseException:
            why = "the swap was interrupted"
            raise
        finally:
            if why is not None:
                log.warning("rolling back: %s", why)
                write_env(path, original)
                restart_service(config, service)
                if wait_model_ready(config, service, before.served or "", ready_s) is None:
                    why += (
                        f"; the previous model {before.served} was not listed again within "
                        f"{ready_s:g} s either: check 'sbx health' and "
                        f"'docker compose logs {service}'"
                    )
                    log.error("rollback incomplete: %s", why)
                _record(config.stack_dir, service, env_rel, before, after, why)
        if why is None:
            _record(config.stack_dir, service, env_rel, before, after, None)
    outcome = "swapped" if why is None else f"rolled back: {why}"
    report = SwapReport(
        service=service, env_file=env_rel, before=before, after=after, outcome=outcome,
        preflight=verdict, baseline=baseline, suite=suite, env_kept_as=str(kept),
        data_snapshot=data_snapshot,
    )  # fmt: skip
    _publish(report)
    if why is not None:
        raise ModelSwapRolledBack(service, model, why)
    return report


def _snapshot_data(
    config: SbxConfig, stack: str | None, config_file: str | None, service: str
) -> str | None:
    """The pre-upgrade snapshot of the service's data parts, as an upgrade takes one (none for a
    vLLM service, whose only data, the models, is immutable): kept by prune for [upgrade]
    keep_pre_upgrade_days. A failed snapshot refuses the swap, nothing changed."""
    compose_service = (
        config.services[service].compose_service if service in config.services else service
    )
    parts = data_parts(config, [compose_service])
    if not parts or not config.upgrade.snapshot_data:
        return None
    from flows.backup import backup_stack

    stamp = f"model-swap {service} {datetime.now():%Y%m%dT%H%M%S}"
    report = backup_stack(
        stack=stack, parts=parts, config_file=config_file, trigger=TAG, tags={TAG: stamp}
    )
    return report.snapshot_id


def _try_new_model(
    config: SbxConfig,
    service: str,
    served: str,
    env_rel: str,
    prompts: list[Prompt],
    baseline: SuiteResult | None,
) -> tuple[SuiteResult | None, str | None]:
    """Recreate the service on the edited file and judge it: (suite, why it must roll back)."""
    resolved = served_now(config, service)
    if resolved != served:  # compose must read the edit, or nothing below means anything
        return None, f"after editing {env_rel}, compose still gives {service} {resolved!r}"
    restart_service(config, service)
    ready_s = config.model_swap_ready_timeout_s
    url = wait_model_ready(config, service, served, ready_s)
    if url is None:
        return None, f"{served} was not listed by {service} within {ready_s:g} s"
    suite = run_prompt_suite(url, served, prompts, service_key(config, service))
    must_pass = baseline.passed if baseline else {p.name for p in prompts}
    lost = sorted(must_pass - suite.passed)
    if not lost:
        return suite, None
    why = "prompt suite regressed: " + ", ".join(
        f"{r.name} ({r.detail})" for r in suite.results if r.name in lost
    )
    return suite, why


def _record(
    stack_dir: Path,
    service: str,
    env_file: str,
    before: ServedModel,
    after: ServedModel,
    why: str | None,
) -> None:
    # env_file: the drift check explains that file's change (and its pre-swap copy) by this entry
    append_change(
        stack_dir,
        action="model-swap" if why is None else "model-swap-rolled-back",
        target=service,
        before={**before.model_dump(), "env_file": env_file},
        after=after.model_dump() if why is None else {**after.model_dump(), "failed": why},
    )


def _publish(report: SwapReport) -> None:
    lines = [
        f"# Model swap of {report.service}: {report.outcome}",
        "",
        f"{report.before.served} → {report.after.served}",
        "",
        f"Preflight: {report.preflight.message}",
        "",
        "| prompt | before | after |",
        "|---|---|---|",
    ]
    base = {r.name: r for r in report.baseline.results} if report.baseline else {}
    for r in report.suite.results if report.suite else []:
        old = base.get(r.name)
        was = ("pass" if old.passed else "fail") if old else "-"
        lines.append(f"| {r.name} | {was} | {'pass' if r.passed else 'fail: ' + r.detail} |")
    publish_markdown(
        artifact_key("model-swap", report.service),
        "\n".join(lines) + "\n",
        f"Model swap of {report.service}",
    )
