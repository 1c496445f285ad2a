"""The benchmark's smoke run: `bench/run.py --quick` runs every section and prints its table. No timing is asserted:
figures depend on the machine, and the benchmark reports them, it does not judge them here."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

SECTIONS = (
    "### (a) Unpaced",
    "### (b) Paced",
    "### (c) Open slow streams",
    "### (d) pytest plugin",
    "### (e) 200 scenarios",
)


def test_quick_benchmark_runs_every_section() -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for title in SECTIONS:
        assert title in result.stdout, result.stdout
    for server in ("| baseline |", "| mockllm |"):
        assert server in result.stdout, result.stdout
    assert "commit: " in result.stdout
