"""The soak benchmark's CI smoke variant: `bench/soak.py` runs a few seconds of mixed traffic and passes its verdict."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_soak_runs_briefly_and_reports_a_passing_verdict() -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "4", "--concurrency", "8"],
        capture_output=True,
        text=True,
        timeout=90,
        env=environment,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "RSS (MB)" in out
    assert "(load stopped)" in out
    assert "0 unanswered" in out
    for kind in ("chat-stream 200", "messages 200", "embeddings 200", "error-429 429", "error-529 529",
                 "fault-drop dropped as scripted", "hang-up 200", "bad-json 400", "unknown-route 404"):  # fmt: skip
        assert kind in out, out
    assert out.rstrip().endswith("verdict: PASS")
