"""The reproducible benchmark of mockllm against a raw-ASGI baseline (and aimock when npm is present).

    python bench/run.py                 # everything, a few minutes; prints the report
    python bench/run.py --write         # and writes it to bench/results.md
    python bench/run.py --quick         # tiny sizes, well under 20 s: proves the benchmark runs
    python bench/run.py --only a,b      # some sections: a unpaced, b paced, c memory, d pytest, e scenarios

The servers run on one core and the load generator (bench/loadgen.py, a subprocess) on another. See bench/README.md
for what each section measures and how.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import report
import sections_startup
import sections_streams
import workload
from sections_streams import Context
from servers import AIMOCK_VERSION, BENCH, BenchError, Pinning, Processes, aimock_cli

SECTIONS: dict[str, Callable[[Context], report.Table]] = {
    "a": sections_streams.unpaced,
    "b": sections_streams.paced,
    "c": sections_streams.memory,
    "d": sections_startup.pytest_costs,
    "e": sections_startup.many_scenarios,
}
SERVERS = ("baseline", "coalesced", "starlette", "mockllm", "aimock")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and only baseline and mockllm (CI)")
    parser.add_argument("--only", default="a,b,c,d,e", help="comma-separated sections (default: a,b,c,d,e)")
    parser.add_argument("--duration", type=float, help="seconds counted per server in (a) (default 5, quick 0.5)")
    parser.add_argument("--servers", help=f"comma-separated, of {', '.join(SERVERS)} (default: all; quick: two)")
    parser.add_argument(
        "--mockllm-args", default="", help='extra `mockllm serve` options, one string (e.g. "--workers 2")'
    )
    parser.add_argument(
        "--repeat", type=int, help="runs of each paced row in (b), reported by their median (default 3, quick 1)"
    )
    parser.add_argument("--slow-chunks", type=int, default=20, help="content chunks of a slow stream in (c)")
    parser.add_argument("--aimock-version", default=AIMOCK_VERSION)
    parser.add_argument("--cache", type=Path, default=BENCH / ".cache", help="where aimock is installed with npm")
    parser.add_argument("--write", action="store_true", help="also write the report to bench/results.md")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))} in --only; choose from a,b,c,d,e")
    default = "baseline,mockllm" if args.quick else ",".join(SERVERS)
    args.servers = (args.servers or default).split(",")
    if set(args.servers) - set(SERVERS):
        parser.error(f"unknown server in --servers {','.join(args.servers)}; choose from {', '.join(SERVERS)}")
    if "baseline" not in args.servers:
        args.servers.insert(0, "baseline")  # every ratio is to it
    if args.duration is None:
        args.duration = 0.5 if args.quick else 5.0
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat} runs nothing; give 1 or more")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    pinning = Pinning.choose()
    if pinning.generator is not None:
        os.sched_setaffinity(0, {pinning.generator})  # this process only waits and samples: keep it off the server
    processes = Processes()
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    tables: list[report.Table] = []
    with tempfile.TemporaryDirectory(prefix="mockllm-bench-") as work:
        slow = workload.slow_stream(3, 0.2) if args.quick else workload.slow_stream(args.slow_chunks, 1.0)
        context = Context(
            processes=processes,
            pinning=pinning,
            work=Path(work),
            quick=args.quick,
            duration=args.duration,
            servers=args.servers,
            mockllm_args=shlex.split(args.mockllm_args),
            slow=slow,
            repeat=args.repeat,
        )
        if "aimock" in args.servers and set(args.only.split(",")) & {"a", "b", "c"}:
            context.aimock_cli, reason = aimock_cli(args.cache, args.aimock_version)
            context.aimock_note = f"{args.aimock_version}" if context.aimock_cli else f"not run ({reason})"
            if context.aimock_cli is None:
                print(f"aimock: not run ({reason})", file=sys.stderr, flush=True)
        try:
            for name in args.only.split(","):
                print(f"section ({name}) ...", file=sys.stderr, flush=True)
                began = time.perf_counter()
                table = SECTIONS[name](context)
                tables.append(table)
                print(table.render(), flush=True)
                print(f"section ({name}) took {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; servers stopped", file=sys.stderr)
            return 130
        finally:
            processes.stop_all()
    facts = context.facts
    verdicts = report.judge(facts)
    command = ["python", "bench/run.py", *argv]
    lines = report.machine(command, pinning, context.aimock_note, load_at_start)
    text = "\n".join(
        [
            "# mockllm benchmark results",
            "",
            "Written by `python bench/run.py --write`; how to read it: bench/README.md. Figures depend on the "
            "machine and on what else runs on it; compare runs on the same one.",
            "",
            *[f"- {line}" for line in lines],
            f"- wall time of the run: {time.perf_counter() - started:.0f} s",
            "",
            *[table.render() for table in tables],
        ]
    )
    if not args.quick and any(v.met is not None for v in verdicts):
        judged = report.verdict_table(verdicts).render()
        print(judged)
        text += "\n" + judged
    print("\n".join(lines))
    if args.write:
        (BENCH / "results.md").write_text(text)
        print("wrote bench/results.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
