"""The pure parts of a model swap: env edits keep everything else; prompts.yaml validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.config import load_config
from sbx.errors import ConfigError
from tasks.gpu.model_swap import edit_env, load_prompts, model_settings, parse_env, swap_updates

WORKER_ENV = (Path(__file__).parents[2] / "examples/stack/env/worker.env").read_text()


def test_swap_edits_only_the_model_lines() -> None:
    before = model_settings(WORKER_ENV)
    assert before.served == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert (before.quantization, before.max_model_len) == ("awq", 4096)
    text = edit_env(WORKER_ENV, swap_updates(before, "org/Small-1B", None, 2048))
    env = parse_env(text)
    assert env["MODEL"] == env["SERVED_MODEL_NAME"] == "org/Small-1B"
    assert env["MODEL_DIR"] == "/models/Small-1B"
    assert env["MAX_MODEL_LEN"] == "2048"
    assert "QUANTIZATION" not in env  # not given: vLLM reads it from the model's config
    assert env["GPU_MEMORY_UTILIZATION"] == "0.85" and env["HF_HUB_OFFLINE"] == "1"
    assert text.splitlines()[0].startswith("# vLLM worker")  # comments stay where they were
    back = edit_env(text, swap_updates(model_settings(text), "org/Q", "gptq", None))
    assert parse_env(back)["QUANTIZATION"] == "gptq"
    assert parse_env(back)["MAX_MODEL_LEN"] == "2048"  # unchanged when not given


def test_example_prompt_suite_loads() -> None:
    stack = Path(__file__).parents[2] / "examples/stack"
    prompts = load_prompts(load_config(stack))
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
