"""What makes an OpenAI-style completion answer real: one judge for the gate, health and prompts.

A 200 with a non-empty ``choices`` is not enough: ``{"choices":[{"message":null}]}`` is what a
broken engine or a misrouted proxy answers. A completion passes when ``choices[0]`` holds a
non-empty ``message.content`` (chat) or ``text`` (legacy), the answer names the model that was
asked for, and ``usage`` is sane: whole, non-negative token counts, at least one completion
token, and a total that adds up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CompletionVerdict:
    text: str | None  # the reply text when the completion is real
    problem: str | None  # what is wrong with it otherwise

    @property
    def ok(self) -> bool:
        return self.problem is None


def judge_completion(body: Any, model: str | None) -> CompletionVerdict:
    """Judge a completion's JSON body; ``model``: the served model id it must name (if known)."""
    problem = _problem(body, model)
    if problem is not None:
        return CompletionVerdict(text=None, problem=f"completion answered {problem}")
    return CompletionVerdict(text=_text(body["choices"][0]), problem=None)


def _problem(body: Any, model: str | None) -> str | None:
    if not isinstance(body, dict):
        return "no JSON object"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "without choices"
    if not isinstance(choices[0], dict) or not _text(choices[0]):
        return "no text (empty or missing choices[0].message.content)"
    if model is not None and body.get("model") != model:
        return f"for model {str(body.get('model'))[:80]!r}, not the served {model!r}"
    return _usage_problem(body.get("usage"))


def _text(choice: dict[str, Any]) -> str | None:
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    text = content if isinstance(content, str) else choice.get("text")
    return text if isinstance(text, str) and text else None


def _usage_problem(usage: Any) -> str | None:
    if not isinstance(usage, dict):
        return "without usage"
    counts = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"with a bad usage.{name} ({str(value)[:40]})"
        counts[name] = value
    if counts["completion_tokens"] < 1:
        return "with no completion token in usage"
    if counts["total_tokens"] != counts["prompt_tokens"] + counts["completion_tokens"]:
        return "with usage.total_tokens not the sum of prompt and completion tokens"
    return None
