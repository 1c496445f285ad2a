"""The supervisor of `mockllm serve --workers N`, in process: its sockets, its restart policy, the options it
refuses. The worker processes themselves are tested in tests/test_workers.py."""

from __future__ import annotations

import socket
import sys
from collections import deque
from pathlib import Path

import pytest
from conftest import EXAMPLES

from mockllm.cli import main
from mockllm.server import PortInUseError
from mockllm.supervisor import RESTART_LIMIT, RESTART_WINDOW, bind_sockets, restart_delay


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_port_0_gives_every_worker_a_socket_on_one_port() -> None:
    sockets = bind_sockets("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1
        assert ports != {0}
        assert len(sockets) == (3 if sys.platform.startswith("linux") else 1)
    finally:
        _close(sockets)


def test_a_second_workers_server_on_the_same_port_is_refused() -> None:
    # SO_REUSEPORT alone would let the second join the first and take half of its connections.
    first = bind_sockets("127.0.0.1", 0, 2)
    port = first[0].getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind_sockets("127.0.0.1", port, 2)
    finally:
        _close(first)


def test_a_worker_is_restarted_at_once_then_with_a_growing_delay_then_given_up() -> None:
    deaths: deque[float] = deque()
    delays = [restart_delay(deaths, 100.0 + i) for i in range(RESTART_LIMIT + 1)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 2.0, None]


def test_deaths_older_than_the_window_are_forgotten() -> None:
    deaths: deque[float] = deque()
    for i in range(RESTART_LIMIT):
        restart_delay(deaths, float(i))
    assert restart_delay(deaths, RESTART_WINDOW + 10.0) == 0.0
    assert list(deaths) == [RESTART_WINDOW + 10.0]


def test_recording_with_several_workers_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recordings"
    assert main(["serve", "--port", "0", "--workers", "2", "--record", "missing", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--record missing with --workers 2: each worker would record on its own" in err
    assert "record with --workers 1 (the default), then replay the --out folder with --workers 2" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "argument --workers: 0 is not a number of worker processes; give 1 (the default) to 256"),
        ("many", "argument --workers: 'many' is not a number of worker processes; give 1 (the default) to 256"),
        ("1000", "argument --workers: 1000 is not a number of worker processes"),
    ],
)
def test_a_bad_workers_value_exits_2_with_the_range(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--workers", value]) == 2
    assert message in capsys.readouterr().err


def test_a_taken_port_stops_the_workers_server_before_any_worker_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(EXAMPLES), "--port", str(port), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "worker" not in err.replace("--workers", "")


def test_bad_scenarios_are_reported_once_by_the_supervisor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nscenarios: [{id: x, repy: {text: hi}}]\n", encoding="utf-8")
    assert main(["serve", str(bad), "--port", "0", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("unknown key `repy`") == 1
    assert "[worker" not in err
