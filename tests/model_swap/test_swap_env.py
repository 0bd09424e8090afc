"""The pure parts of a model swap: which variables feed the vLLM arguments, the edit of the
file that holds them (everything else kept), and prompts.yaml validation.

`docker compose config` runs here (no daemon needed): the wiring is read from the example's own
compose files, as a swap on the box reads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blocks.config import load_config
from sbx.errors import ConfigError, ModelSwapBadService
from tasks.gpu.model_swap import edit_env, load_prompts, parse_env, swap_plan
from tasks.gpu.model_wiring import find_wiring

EXAMPLE = Path(__file__).parents[2] / "examples/stack"


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    dest = tmp_path / "stack"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("images", "data", ".sbx"))
    return dest


def test_the_wiring_is_read_from_the_raw_command_and_the_include(stack: Path) -> None:
    wiring = find_wiring(load_config(stack), "worker")
    assert wiring.compose_file == stack / "services.yml"
    assert wiring.env_file == stack / "env" / "stack.env"  # the include's env_file
    assert {f: v.variable for f, v in wiring.variables.items()} == {
        "--model": "WORKER_MODEL_DIR",
        "--served-model-name": "WORKER_MODEL",
        "--quantization": "WORKER_QUANTIZATION",
        "--max-model-len": "WORKER_MAX_MODEL_LEN",
    }
    assert wiring.current.served == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert (wiring.current.model, wiring.current.quantization) == (
        "/models/Qwen2.5-7B-Instruct-AWQ",
        "awq",
    )
    assert wiring.current.max_model_len == 4096
    # the watchdog passes no --quantization: nothing to read, nothing a swap could set
    watchdog = find_wiring(load_config(stack), "watchdog")
    assert "--quantization" not in watchdog.variables and watchdog.current.quantization is None


def test_swap_edits_only_the_model_lines(stack: Path) -> None:
    wiring = find_wiring(load_config(stack), "worker")
    original = wiring.env_file.read_text()
    updates, after = swap_plan(wiring, "org/Small-1B", None, 2048)
    assert updates == {
        "WORKER_MODEL_DIR": "/models/Small-1B",  # beside the old folder (data/models on /models)
        "WORKER_MODEL": "org/Small-1B",
        "WORKER_MAX_MODEL_LEN": "2048",
    }
    assert (after.served, after.quantization, after.max_model_len) == ("org/Small-1B", "awq", 2048)
    text = edit_env(original, updates)
    env = parse_env(text)
    assert env["WORKER_API_KEY"] == "example-worker-key-change-me"  # other lines stay
    assert env["WATCHDOG_MODEL"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert env["WORKER_QUANTIZATION"] == "awq"  # not given: unchanged
    assert text.splitlines()[0] == original.splitlines()[0]  # comments stay where they were
    quantized, _ = swap_plan(wiring, "org/Q", "gptq", None)
    assert quantized["WORKER_QUANTIZATION"] == "gptq" and "WORKER_MAX_MODEL_LEN" not in quantized


def test_what_no_variable_sets_is_refused_before_anything_changes(
    stack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watchdog = find_wiring(load_config(stack), "watchdog")
    with pytest.raises(ModelSwapBadService, match="passes no --quantization"):
        swap_plan(watchdog, "org/Q", "awq", None)
    with pytest.raises(ModelSwapBadService, match="those that do: watchdog, worker"):
        find_wiring(load_config(stack), "qdrant")
    services = stack / "services.yml"
    services.write_text(
        services.read_text().replace("${WORKER_MODEL_DIR:?set in env/stack.env}", "/models/x")
    )
    with pytest.raises(ModelSwapBadService, match=r"--model is written out in services\.yml"):
        find_wiring(load_config(stack), "worker")


def test_a_variable_that_wins_over_the_edited_file_is_refused(
    stack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stack / ".env").write_text((stack / ".env").read_text() + "WORKER_MODEL=pinned/elsewhere\n")
    with pytest.raises(ModelSwapBadService, match=r"WORKER_MODEL .* is set in \.env"):
        find_wiring(load_config(stack), "worker")
    (stack / ".env").write_text("COMPOSE_FILE=docker-compose.yml:compose.standins.yml\n")
    monkeypatch.setenv("WORKER_MAX_MODEL_LEN", "99")
    with pytest.raises(ModelSwapBadService, match="environment sbx runs in"):
        find_wiring(load_config(stack), "worker")


def test_example_prompt_suite_loads() -> None:
    prompts = load_prompts(load_config(EXAMPLE))
    assert prompts and all(p.expect for p in prompts)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "No prompt suite"),
        ("[]", "has no prompts"),
        ("- {name: a, prompt: hi, expect: '('}", "unusable"),
        ("- {name: a, prompt: hi}", "unusable"),
    ],
)
def test_bad_prompt_suites_are_config_errors(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    if text is not None:
        (tmp_path / "prompts.yaml").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_prompts(load_config(tmp_path))
