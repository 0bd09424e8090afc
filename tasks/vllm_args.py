"""What a vLLM service serves, read from its arguments as vLLM itself reads them.

Upstream's OpenAI server (``vllm/vllm-openai``: the image's entrypoint is the server, a compose
``command:`` its arguments) takes the model as ``--model`` (the folder or hub id it loads) and
``--served-model-name`` (one or more names clients ask for; unset: the model), plus
``--quantization``/``-q`` and ``--max-model-len``. Environment variables play no part in it.
Read from the resolved compose model (``docker compose config``: interpolation done), so what
is read here is what the container is started with.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict

MODEL_FLAGS = ("--model", "--served-model-name", "--quantization", "--max-model-len")
_SHORT = {"-q": "--quantization"}


class ServedModel(BaseModel):
    """A vLLM service's model settings, as its arguments give them (None: not passed)."""

    model_config = ConfigDict(frozen=True)

    model: str | None = None
    served_model_name: str | None = None  # the first of --served-model-name's names
    quantization: str | None = None
    max_model_len: int | None = None

    @property
    def served(self) -> str | None:
        """The name /v1/models lists first: ``served_model_name or [model]`` in vLLM."""
        return self.served_model_name or self.model


def command_words(command: list[str]) -> list[str]:
    """The argument words, a ``sh -c "…"`` string split as a shell would."""
    words: list[str] = []
    for word in command:
        try:
            words += shlex.split(word) if " " in word else [word]
        except ValueError:
            words += word.split()
    return words


def flag_values(words: list[str]) -> dict[str, list[str]]:
    """``--flag value…`` and ``--flag=value`` of the model flags; the last one wins, as with
    argparse; a flag's values run to the next word starting with ``-``."""
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name, sep, inline = word.partition("=")
        name = _SHORT.get(name, name)
        i += 1
        if name not in MODEL_FLAGS:
            continue
        if sep:
            found[name] = [inline]
            continue
        values = []
        while i < len(words) and not words[i].startswith("-"):
            values.append(words[i])
            i += 1
            if name != "--served-model-name":  # the one flag that takes several (nargs +)
                break
        found[name] = values
    return found


def served_model(command: list[str]) -> ServedModel:
    """The model settings a vLLM command line passes."""
    values = flag_values(command_words(command))

    def first(flag: str) -> str | None:
        got = values.get(flag) or []
        return got[0] if got and got[0] else None

    length = first("--max-model-len")
    return ServedModel(
        model=first("--model"),
        served_model_name=first("--served-model-name"),
        quantization=first("--quantization"),
        max_model_len=int(length) if length and length.isdigit() else None,
    )
