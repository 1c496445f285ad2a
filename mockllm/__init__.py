"""mockllm: a mock and replay server for testing LLM clients."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .app import Settings, create_app
    from .loading import Problem, ScenarioError, load_scenarios
    from .pytest_plugin import MockLLM
    from .scenarios import Scenario
    from .server import MockServer, PortInUseError

__all__ = [
    "MockLLM",
    "MockServer",
    "PortInUseError",
    "Problem",
    "Scenario",
    "ScenarioError",
    "Settings",
    "__version__",
    "create_app",
    "load_scenarios",
]

# Exports are imported on first use: the pytest plugin is loaded by every pytest run in an environment where mockllm
# is installed, and importing the server (starlette, uvicorn, pydantic) costs a quarter of a second.
_LAZY = {
    "MockLLM": "pytest_plugin",  # the `mockllm` fixture's handle, for annotations (needs pytest)
    "MockServer": "server",
    "PortInUseError": "server",
    "Problem": "loading",
    "Scenario": "scenarios",
    "ScenarioError": "loading",
    "Settings": "app",
    "create_app": "app",
    "load_scenarios": "loading",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mockllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
