"""Sections (a), (b) and (c): unpaced throughput, pacing error, and memory per open stream, server by server."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workload
from report import Table, errors, number, percent, ratio, triple
from servers import (
    Pinning,
    Processes,
    Server,
    ServerKind,
    aimock_kind,
    baseline_kind,
    mockllm_kind,
    rss_kib,
    run_generator,
    serving,
    start_server,
)
from workload import FAST, PACED, Stream


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one paced row as one: the median of each percentile and CPU share, summed early chunks and
    errors."""
    if len(runs) == 1:
        return runs[0]
    combined = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, dict) and key != "errors":
            combined[key] = {q: statistics.median(run[key][q] for run in runs if q in run[key]) for q in value}
        elif key in ("server_cpu", "generator_cpu") and value is not None:
            combined[key] = statistics.median(run[key] for run in runs)
    combined["early"] = sum(run["early"] for run in runs)
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run["errors"])
    combined["errors"] = dict(errors)
    return combined


def flags(**options: object) -> list[str]:
    """Command-line options of bench/loadgen.py from keywords: `connections=32` is `--connections 32`."""
    return [part for name, value in options.items() for part in (f"--{name.replace('_', '-')}", str(value))]


@dataclass
class Context:
    """What every section needs: the processes, the cores, the sizes of this run, and where results go."""

    processes: Processes
    pinning: Pinning
    work: Path
    quick: bool
    duration: float
    servers: list[str]
    mockllm_args: list[str]
    slow: Stream
    repeat: int = 1  # runs of each paced row, combined by their median (`median_run`)
    aimock_cli: Path | None = None
    aimock_note: str = "not asked for"
    facts: dict[str, Any] = field(default_factory=dict)
    running: dict[str, Server] = field(default_factory=dict)  # quick runs keep their servers between sections

    @property
    def streams(self) -> list[Stream]:
        return [FAST, PACED, self.slow]

    def kinds(self) -> dict[str, ServerKind]:
        """The servers this run can start, by name."""
        scenarios = workload.write(self.work, "bench.yaml", workload.mockllm_scenarios(self.streams))
        catalogue = json.dumps([[s.prompt, s.chunks, s.ttft, s.gap] for s in self.streams])
        kinds = {
            "baseline": baseline_kind(catalogue),
            "coalesced": baseline_kind(catalogue, "coalesced"),
            "starlette": baseline_kind(catalogue, "starlette"),
            "mockllm": mockllm_kind(scenarios, self.mockllm_args),
        }
        if self.aimock_cli is not None:
            fixtures = workload.write(self.work, "aimock.json", workload.aimock_fixtures(self.streams))
            kinds["aimock"] = aimock_kind(self.aimock_cli, fixtures)
        return kinds

    def chosen(self, exclude: tuple[str, ...] = ()) -> list[ServerKind]:
        kinds = self.kinds()
        return [kinds[name] for name in self.servers if name in kinds and name not in exclude]

    def absent(self) -> list[str]:
        """Notes for the servers asked for that could not run."""
        if "aimock" in self.servers and self.aimock_cli is None:
            return [f"aimock: {self.aimock_note}."]
        return []

    @contextmanager
    def serve(self, kind: ServerKind) -> Iterator[Server]:
        """A fresh server for the block; in a quick run, one server of each kind for the whole run."""
        log = self.work / f"{kind.name}.log"
        if not self.quick:
            with serving(self.processes, kind, self.pinning.server, log) as server:
                yield server
            return
        if kind.name not in self.running:
            self.running[kind.name] = start_server(self.processes, kind, self.pinning.server, log)
        yield self.running[kind.name]

    def generate(self, server: Server, arguments: list[str], timeout: float, **options: Any) -> dict[str, Any]:
        return run_generator(
            self.processes, self.pinning.generator, ["--port", str(server.port), *arguments], timeout, **options
        )

    def warm_up(self, server: Server) -> None:
        """A short unpaced run, so that first-request costs (imports, caches) fall outside the measurement."""
        if self.quick:
            return
        self.generate(server, flags(prompt=FAST.prompt, connections=4, duration=0.3, warmup=0), 30)


def unpaced(context: Context) -> Table:
    """(a) Events and answers per second, every connection sending its next request as soon as an answer ends."""
    connections = 32
    warmup = 0.1 if context.quick else 1.0
    table = Table(
        f"(a) Unpaced: {FAST.chunks}-chunk chat streams, {connections} connections, {context.duration:g} s counted "
        f"after {warmup:g} s of warm-up",
        [
            "server",
            "events/s",
            "x baseline",
            "requests/s",
            "x baseline",
            "latency p50 / p99 (ms)",
            "server CPU",
            "generator CPU",
            "errors",
        ],
    )
    results: dict[str, dict[str, Any]] = {}
    for kind in context.chosen():
        with context.serve(kind) as server:
            arguments = flags(
                prompt=FAST.prompt,
                connections=connections,
                duration=context.duration,
                warmup=warmup,
                expect_events=FAST.events,
                server_pid=server.process.pid,
            )
            results[kind.name] = context.generate(server, arguments, timeout=context.duration + warmup + 60)
        context.facts[f"a/{kind.name}"] = results[kind.name]
    reference = results.get("baseline", {})
    for name, result in results.items():
        latency = result["latency_ms"]
        table.rows.append(
            [
                name,
                number(result["events_per_s"], 0),
                ratio(result["events_per_s"], reference.get("events_per_s")),
                number(result["requests_per_s"], 0),
                ratio(result["requests_per_s"], reference.get("requests_per_s")),
                f"{number(latency.get('p50'))} / {number(latency.get('p99'))}" if latency else "-",
                percent(result.get("server_cpu")),
                percent(result.get("generator_cpu")),
                errors(result["errors"]),
            ]
        )
    table.notes.append(
        f"An event is one SSE event (`data: ...` and a blank line); a stream is {FAST.events} events: the role chunk, "
        f"{FAST.chunks} content chunks, the finish chunk and `data: [DONE]`.",
    )
    if "coalesced" in context.servers:
        table.notes.append(
            "`coalesced` is the baseline with the events due at the same time joined into one write (here the whole "
            "stream): what uvicorn can do when a server does not write each event on its own; the ratios are to "
            "`baseline`, which writes each event on its own as mockllm does."
        )
    table.notes += context.absent()
    table.notes.append(
        "CPU: the share of one core each process used while counting (from /proc/PID/stat and the generator's "
        "process time). A server well below 100% was held back by the generator or by other work on its core."
    )
    return table


def paced(context: Context) -> Table:
    """(b) How far each stream's first, every next, and last content chunk arrive from their schedule."""
    counts = [20] if context.quick else [100, 500, 1000]
    table = Table(
        f"(b) Paced: TTFT {PACED.ttft * 1000:g} ms, then {PACED.gap * 1000:g} ms between {PACED.chunks} content "
        "chunks; error against the schedule, ms (p50 / p99 / max)",
        [
            "streams",
            "server",
            "TTFT error",
            "gap error",
            "last chunk error",
            "p99 x baseline (TTFT, gap, last)",
            "CPU server / generator",
            "early",
            "errors",
        ],
    )
    # Two arrivals: "spread", each request sent at its own moment within one stream's length (a steady 500 open
    # streams, as a load test keeps them), which the targets are judged on; and "together", all in one pass (a
    # burst: the last request waits for every one before it to be read and started).
    spread = PACED.last
    arrivals = (("spread", spread), ("together", 0.0))
    results: dict[tuple[int, str, str], dict[str, Any]] = {}
    for kind in context.chosen():
        with context.serve(kind) as server:
            context.warm_up(server)
            for count in counts:
                for arrival, seconds in arrivals:
                    schedule = f"{PACED.ttft},{PACED.gap},{PACED.chunks}"
                    arguments = flags(
                        prompt=PACED.prompt,
                        connections=count,
                        paced=schedule,
                        timeout=PACED.last + 60,
                        server_pid=server.process.pid,
                        spread=seconds,
                    )
                    runs = [
                        context.generate(server, arguments, timeout=PACED.last + seconds + 120)
                        for _ in range(context.repeat)
                    ]
                    result = median_run(runs)
                    results[count, arrival, kind.name] = result
                    suffix = "" if arrival == "spread" else "/together"
                    context.facts[f"b/{count}/{kind.name}{suffix}"] = result
    for count in counts:
        for arrival, _ in arrivals:
            reference = results.get((count, arrival, "baseline"), {})
            for kind in context.chosen():
                result = results[count, arrival, kind.name]
                ratios = " / ".join(
                    ratio(result[m].get("p99"), reference.get(m, {}).get("p99"))
                    for m in ("ttft_ms", "gap_ms", "last_ms")
                )
                table.rows.append(
                    [
                        f"{count} {arrival}",
                        kind.name,
                        triple(result["ttft_ms"]),
                        triple(result["gap_ms"]),
                        triple(result["last_ms"]),
                        ratios if reference else "-",
                        f"{percent(result.get('server_cpu'))} / {percent(result.get('generator_cpu'))}",
                        str(result["early"]),
                        errors(result["errors"]),
                    ]
                )
    table.notes += [
        f"All streams are opened first. `spread`: each connection sends its request at its own moment within "
        f"{spread:g} s (one stream's length), so that all are open at once at a steady rate of arrivals, as in a "
        f"load test; the targets are judged on these rows. `together`: every connection sends in one pass, a burst "
        f"in which the last request waits for all before it to be read and started. The generator times each "
        f"event's arrival; TTFT counts from its own write of the request, so it includes the way there.",
        f"Each row is {context.repeat} run(s) on the same server, one after the other; every figure is the median "
        f"of the runs' (a p99 is the median of {context.repeat} p99s), `early` and errors are their sums. A single "
        f"run at 1,000 streams can be several times another on the same machine, for every server.",
        "TTFT and last errors are signed (late is positive); a gap error is |gap - nominal| between consecutive "
        "content chunks (two chunks read together make a gap of 0, an error of one whole gap).",
        "`early`: content chunks that arrived over 1 ms before their deadline, as seen by the client.",
        "CPU: the share of one core each process used from the first request to the last event.",
        *context.absent(),
    ]
    if "aimock" in [kind.name for kind in context.chosen()]:
        table.notes.append(
            "aimock paces with relative timers (`streamingProfile: {ttft, tps}`): its delays add up, and its finish "
            "chunk comes one gap after the last content chunk."
        )
    return table


def memory(context: Context) -> Table:
    """(c) Resident memory per open stream, and how late the chunks of those long-lived streams arrive."""
    slow = context.slow
    counts = [200] if context.quick else [5000, 10000]
    table = Table(
        f"(c) Open slow streams: one chunk every {slow.gap:g} s, {slow.chunks} chunks; server memory and lateness",
        [
            "streams",
            "server",
            "RSS before (MiB)",
            "RSS peak (MiB)",
            "per stream (KB)",
            "x baseline",
            "lateness ms (p50 / p99 / max)",
            "drift from the first chunk",
            "early",
            "errors",
        ],
    )
    per_stream: dict[tuple[int, str], float] = {}
    for count in counts:
        for kind in context.chosen(exclude=("coalesced", "starlette")):
            with context.serve(kind) as server:
                context.warm_up(server)
                before = rss_kib(server.process.pid)
                peak = [before]

                def sample(pid: int = server.process.pid, peak: list[int] = peak) -> None:
                    peak.append(rss_kib(pid))

                schedule = f"{slow.ttft},{slow.gap},{slow.chunks}"
                arguments = flags(prompt=slow.prompt, connections=count, paced=schedule, timeout=slow.last + 60)
                result = context.generate(server, arguments, timeout=slow.last + 120, sample=sample)
            kb = (max(peak) - before) * 1.024 / max(1, result["connections"])
            per_stream[count, kind.name] = kb
            result = {**result, "rss_before_kib": before, "rss_peak_kib": max(peak), "per_stream_kb": kb}
            context.facts[f"c/{count}/{kind.name}"] = result
            table.rows.append(
                [
                    str(count),
                    kind.name,
                    number(before / 1024),
                    number(max(peak) / 1024),
                    number(kb),
                    ratio(kb, per_stream.get((count, "baseline"))),
                    triple(result["late_ms"]),
                    triple(result["drift_ms"]),
                    str(result["early"]),
                    errors(result["errors"]),
                ]
            )
    table.notes += [
        "A fresh server for each row, warmed up with a short unpaced run; RSS is VmRSS of /proc/PID/status sampled "
        "every 0.1 s while the streams run; per stream = (peak - before) / streams (1 KB = 1,000 bytes).",
        "Lateness: each content chunk's arrival minus its deadline (request write + first deadline + k gaps). All "
        "requests are sent at once, so it includes the time the server takes to read and start every request (a "
        "server counts deadlines from a request's arrival). Drift: chunk k's arrival minus the first chunk's arrival "
        "and k gaps, how well an open stream keeps time once it has started.",
        *context.absent(),
    ]
    return table
