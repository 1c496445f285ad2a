"""mockllm: a mock and replay server for testing LLM clients."""

from __future__ import annotations

from ._version import __version__
from .app import Settings, create_app
from .scenarios import Problem, Scenario, ScenarioError, load_scenarios
from .server import MockServer, PortInUseError

__all__ = [
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
