"""Cassettes: the pytest plugin's recordings, one file per test, beside the test file.

`cassettes/<test module>/<test name>.yaml` holds one scenario per distinct request the test made, in the
recording format (DESIGN.md "Record and replay"). A test replays its cassette by default; `--mockllm-record
missing` records what it lacks, `--mockllm-record all` rewrites it whole so that stale exchanges disappear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scenarios import Scenario
    from .server import MockServer

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cassette_path(test_file: Path, nodeid: str) -> Path:
    """Where a test's cassette lives: `cassettes/<module>/<test>.yaml` beside the test file; parametrised and
    class-bound names made file-safe (`TestA::test_x[1-a/b]` -> `TestA.test_x-1-a_b`)."""
    name = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    name = name.replace("::", ".").replace("[", "-").rstrip("]")
    safe = _UNSAFE.sub("_", name).strip("_.") or "test"
    return test_file.parent / "cassettes" / test_file.stem / f"{safe}.yaml"


def load_cassette(path: Path) -> list[Scenario]:
    """The recordings of a cassette (none when it does not exist yet); raises ScenarioError for a broken one."""
    from .loading import load_scenarios

    return load_scenarios([path]) if path.is_file() else []


def start_recording(server: MockServer, path: Path, recorded: list[Scenario]) -> bool:
    """Point the server's recorder at this test's cassette; False when the server does not record."""
    proxy = server.state.proxy
    if proxy is None:
        return False
    proxy.recorder.use_cassette(path, recorded if proxy.mode == "missing" else [])
    return True


def stop_recording(server: MockServer) -> None:
    """Recordings made outside a test go back to the server's `out` folder."""
    proxy = server.state.proxy
    if proxy is not None:
        proxy.recorder.use_cassette(None, [])


def record_hint(path: Path, base: Path) -> str:
    """How to record the exchanges a test lacks."""
    try:
        shown = path.relative_to(base.parent)
    except ValueError:
        shown = path
    where = "its cassette" if path.is_file() else f"a cassette ({shown} does not exist yet)"
    return (
        f"To replay real answers instead, record {where}: pytest --mockllm-record missing "
        f"[--mockllm-upstream URL] (then commit the cassette; --mockllm-record all re-records it whole)."
    )
