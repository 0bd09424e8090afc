"""What memory vLLM gives a model on a GPU: its budget, and whether it starts at all. Pure.

Read from vLLM V1's worker (``vllm/v1/worker/gpu_worker.py``, ``Worker.init_device`` and
``determine_available_memory``; ``vllm/utils/mem_utils.py``, ``memory_profiling``):

- at start-up it takes a snapshot after creating its CUDA context and sets
  ``requested_memory = total_memory × gpu_memory_utilization``; when the snapshot's free memory
  is below that it stops with "Free memory on device (…) on startup is less than desired GPU
  memory utilization (…). Decrease GPU memory utilization or reduce GPU memory used by other
  processes." So what other processes hold must leave ``total × utilization`` free, and vLLM's
  own CUDA context comes out of the same free memory;
- the KV cache then gets ``requested_memory − non_kv_cache_memory`` (this instance's weights,
  peak activations and non-torch memory), so the model's whole need is compared with
  ``total × utilization``. Memory of other processes is not subtracted a second time:
  ``memory_profiling`` counts it as "category 1", outside this instance.

The older V0 worker (``vllm/worker/worker.py``, ``determine_num_available_blocks``) took
``total × utilization − peak`` with ``peak`` measured from total − free, i.e. with other
processes inside it. V1 is what ``vllm/vllm-openai`` runs since V0 was removed; on a V0 image,
two vLLMs on one GPU each get less than this says.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

GiB = 1 << 30
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vllm/config/cache.py: CacheConfig.gpu_memory_utilization
#: vLLM's own CUDA context (and NCCL state), already in use when it takes its start-up snapshot
CUDA_CONTEXT_BYTES = 512 << 20
_FLAG = "--gpu-memory-utilization"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuBudget(_Frozen):
    """The memory a vLLM instance may use on one GPU, with every number that went into it."""

    # the computed numbers are in its JSON for the operator; reading that JSON back ignores them
    model_config = ConfigDict(frozen=True, extra="ignore")

    gpu: str  # "GPU 0 (NVIDIA H100 80GB HBM3)"
    total_bytes: int
    utilization: float
    utilization_from: str  # "--gpu-memory-utilization in worker's command", "vLLM's default", …
    used_bytes: int  # NVML's used memory on the GPU now
    given_back_bytes: int  # held by the service being replaced (freed before the new one starts)
    given_back_by: str | None
    note: str | None = None  # e.g. "no GPU process of worker found on it"
    cuda_context_bytes: int = CUDA_CONTEXT_BYTES

    @computed_field  # type: ignore[prop-decorator]
    @property
    def others_bytes(self) -> int:
        """What stays on the GPU when the new instance starts."""
        return max(0, self.used_bytes - self.given_back_bytes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def requested_bytes(self) -> int:
        """vLLM's ``requested_memory``: total × utilization; the model's whole need fits in it."""
        return int(self.total_bytes * self.utilization)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def free_at_start_bytes(self) -> int:
        return self.total_bytes - self.others_bytes - self.cuda_context_bytes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def starts(self) -> bool:
        """vLLM's start-up check: the free memory it sees covers total × utilization."""
        return self.free_at_start_bytes >= self.requested_bytes

    @property
    def highest_utilization(self) -> float:
        """The largest --gpu-memory-utilization that still starts beside the other processes."""
        return max(0.0, self.free_at_start_bytes / self.total_bytes) if self.total_bytes else 0.0

    def explain(self) -> str:
        """One line an operator can redo with a calculator."""
        others = f"other processes hold {_gib(self.others_bytes)}"
        if self.given_back_by:
            others += (
                f" ({_gib(self.used_bytes)} used − {_gib(self.given_back_bytes)} that "
                f"{self.given_back_by} gives back)"
            )
        if self.note:
            others += f" ({self.note})"
        start = (
            f"{_gib(self.total_bytes)} total − {_gib(self.others_bytes)} others − "
            f"{_gib(self.cuda_context_bytes)} CUDA context = {_gib(self.free_at_start_bytes)} free "
            f"at start {'≥' if self.starts else '<'} {_gib(self.requested_bytes)}"
        )
        return (
            f"{self.gpu}: budget {_gib(self.total_bytes)} × {self.utilization:g} "
            f"({self.utilization_from}) = {_gib(self.requested_bytes)}; {others}; "
            f"vLLM {'starts' if self.starts else 'refuses to start'}: {start}"
        )


def service_utilization(spec: dict[str, Any] | None, service: str) -> tuple[float, str]:
    """``--gpu-memory-utilization`` of a compose service (``docker compose config --format json``):
    from its ``entrypoint`` + ``command`` (a list, or a string split as a shell would), else
    vLLM's default (upstream reads no environment variable for it)."""
    spec = spec or {}
    args: list[str] = []
    for key in ("entrypoint", "command"):
        value = spec.get(key)
        if isinstance(value, str):
            try:
                args += shlex.split(value)
            except ValueError:
                args += value.split()
        elif isinstance(value, list):
            args += [str(v) for v in value]
    found = _flag_value(args)
    if found is not None:
        return _fraction(found, f"{_FLAG} in {service}'s command")
    return DEFAULT_GPU_MEMORY_UTILIZATION, f"vLLM's default; {service} sets no {_FLAG}"


def _flag_value(args: list[str]) -> str | None:
    value = None
    for i, arg in enumerate(args):  # the last one wins, as with argparse
        if arg == _FLAG and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(_FLAG + "="):
            value = arg.split("=", 1)[1]
    return value


def _fraction(text: str, source: str) -> tuple[float, str]:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        return (
            DEFAULT_GPU_MEMORY_UTILIZATION,
            f"vLLM's default; {source} is {text!r}, not a fraction in (0, 1]",
        )
    return value, source


def _gib(n: int | float) -> str:
    return f"{n / GiB:.2f} GiB"
