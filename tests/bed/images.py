"""The stand-in images: examples/stack/images/build.py loaded as a module (it is a script)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .stack import REPO

BUILD_SCRIPT = REPO / "examples" / "stack" / "images" / "build.py"


def build_module() -> ModuleType:
    """build.py as the module ``sbx_standin_build`` (build_images, BuildError, ...)."""
    name = "sbx_standin_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BUILD_SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def build_images(*, force: bool = False) -> dict[str, str]:
    """build.py's build_images(): {"base", "vllm", ..., "proxy", "agent"} -> content-hashed tags."""
    tags: dict[str, str] = build_module().build_images(force=force)
    return tags
