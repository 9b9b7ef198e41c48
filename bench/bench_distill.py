"""Benchmark: `distill` against the project's test server with a fixed latency per request.

Usage: python bench/bench_distill.py [--latency 0.1] [--concurrency 16 64 256] [--seconds 8] [--repeat 3]
                                     [--stream] [--workdir bench/out]

The server (tests/openai_server.py) runs in its own process and answers every request after exactly
``--latency`` seconds, so a client that adds no overhead would finish ``concurrency / latency`` requests per
second: that ideal is the baseline. A bare aiohttp client (same requests and start ramp, reply parsed and appended
to a file, nothing else) runs against the same server in turn with distill (bare, distill, bare, distill…): the gap
between the two is distill's own cost. For each run the benchmark prints

- ratio: achieved requests/s over the ideal across the whole request phase (from opening the HTTP session to
  closing it), start ramp and last round trips included; their share shrinks as ``--seconds`` grows;
- steady: the same ratio over the steady state only: the records appended between the moments 10 % and 90 % of
  them were in the output file (a thread reads the file's size every 10 ms, the same way for both clients);
- the client's CPU time per request (the whole call: reading SRC, resuming, requests, writing) and the server's;
- other CPUs: the cores kept busy during the run by everything but client and server (other processes, interrupts),
  from /proc/stat. Client and server share the machine's CPUs: once client + server + other CPU come near the
  number of CPUs, replies queue for a CPU and both ratios fall, whatever the client does.

With ``--repeat`` above 1, each concurrency closes with the medians per client. Target: ratio ≥ 0.9 at 64 and 256.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lf_reasoning.api.options import RequestOptions  # noqa: E402
from lf_reasoning.api.runner import RAMP_S  # noqa: E402
from lf_reasoning.commands.distill import DistillOptions, distill  # noqa: E402
from lf_reasoning.record.inputs import Inputs  # noqa: E402

CLIENTS = ("bare aiohttp", "distill")


async def bare_client(url: str, n: int, concurrency: int, out: Path) -> float:
    """The least any client must do: aiohttp requests from ``concurrency`` workers (started over the same ramp),
    each reply parsed and appended to a file. Returns the seconds from opening the session to closing it (as
    distill's report does)."""
    body = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Problem: what is 6 * 7?"}]})
    jobs = iter(range(n))
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=900)) as session:
        with open(out, "wb", buffering=0) as f:

            async def worker(delay: float) -> None:
                await asyncio.sleep(delay)
                for _ in jobs:
                    async with session.post(
                        url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
                    ) as resp:
                        reply = orjson.loads(await resp.read())
                    f.write(orjson.dumps(reply["choices"][0]["message"]) + b"\n")

            await asyncio.gather(*(worker(i * RAMP_S / concurrency) for i in range(concurrency)))
    return time.perf_counter() - started


def run_bare(url: str, n: int, concurrency: int, out: Path) -> float:
    return asyncio.run(bare_client(url, n, concurrency, out))


def run_distill(src: Path, out: Path, url: str, n: int, concurrency: int, stream: bool) -> float:
    request = RequestOptions(url, "bench", api_key_env="BENCH_NO_KEY", concurrency=concurrency)
    report = distill(DistillOptions(Inputs((str(src),), prompts=True), request, stream=stream), out)
    assert report.done == n and not report.failed, report
    return report.seconds


class Server(NamedTuple):
    proc: subprocess.Popen[str]
    url: str


def start_server(latency: float) -> Server:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return Server(proc, proc.stdout.readline().strip())


def write_prompts(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        for i in range(n):
            f.write(
                orjson.dumps({"question": f"Problem {i}: what is {i} * {i + 1}?", "answer": str(i * (i + 1))}) + b"\n"
            )


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process ``pid`` (read from /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs; user, system, interrupts, steal) from /proc/stat,
    or 0.0 where there is none."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


class Watch:
    """The size of a growing file, sampled every ``interval`` seconds from a thread while in the ``with`` block."""

    def __init__(self, path: Path, interval: float = 0.01) -> None:
        self.path = path
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-output", daemon=True)

    def _sample(self) -> None:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        self.samples.append((time.perf_counter(), size))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def steady_rate(self, low: float = 0.1, high: float = 0.9) -> float | None:
        """Records per second between the samples at which ``low`` and ``high`` of the final records were in
        the file (records are whole lines: a sample counts the lines complete at that size)."""
        data = self.path.read_bytes()
        ends, pos = [], data.find(b"\n")
        while pos >= 0:
            ends.append(pos + 1)
            pos = data.find(b"\n", pos + 1)
        marks: list[tuple[float, int]] = []
        for fraction in (low, high):
            want = fraction * len(ends)
            mark = next(
                ((t, done) for t, size in self.samples if (done := bisect.bisect_right(ends, size)) >= want), None
            )
            if mark is None:
                return None
            marks.append(mark)
        (t0, done0), (t1, done1) = marks
        return (done1 - done0) / (t1 - t0) if t1 > t0 else None


def measure(run: Callable[[], float], out: Path, server_pid: int) -> dict[str, float]:
    """Run one client; its seconds, steady rate, CPU (client, server) and the other CPU load (in cores)."""
    out.unlink(missing_ok=True)
    cpu, server_cpu, busy, wall = cpu_seconds(), cpu_seconds(server_pid), machine_busy_seconds(), time.perf_counter()
    with Watch(out) as watch:
        seconds = run()
    wall = time.perf_counter() - wall
    cpu, server_cpu = cpu_seconds() - cpu, cpu_seconds(server_pid) - server_cpu
    other = max(0.0, (machine_busy_seconds() - busy - cpu - server_cpu) / wall)
    return {
        "seconds": seconds,
        "steady": watch.steady_rate() or float("nan"),
        "cpu": cpu,
        "server_cpu": server_cpu,
        "other": other,
    }


def _median(values: list[float]) -> float:
    """The median of the values that are numbers (a steady rate can be missing: NaN)."""
    numbers = [v for v in values if not math.isnan(v)]
    return statistics.median(numbers) if numbers else float("nan")


def row(
    name: str,
    concurrency: int,
    run: str,
    n: int,
    ideal: float,
    achieved: float,
    steady: float,
    cpu_ms: float,
    server_ms: float,
    other: float,
) -> str:
    return (
        f"{name:>12} {concurrency:>11} {run:>6} {n:>9} {ideal:>12.0f} {achieved:>9.0f} {achieved / ideal:>6.2f} "
        f"{steady / ideal:>7.2f} {cpu_ms:>11.3f} {server_ms:>18.3f} {other:>10.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client and concurrency (medians printed)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    busy, started = machine_busy_seconds(), time.perf_counter()
    time.sleep(1.0)
    busy_before = (machine_busy_seconds() - busy) / (time.perf_counter() - started)
    server = start_server(args.latency)
    url = server.url
    try:
        print(
            f"server {url}, latency {args.latency * 1000:.0f} ms, {'streaming' if args.stream else 'non-streaming'} "
            f"(the bare baseline never streams); {os.cpu_count()} CPUs, load average before: "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; CPUs busy before start: {busy_before:.2f}"
        )
        print(
            f"{'client':>12} {'concurrency':>11} {'run':>6} {'requests':>9} {'ideal req/s':>12} {'achieved':>9} "
            f"{'ratio':>6} {'steady':>7} {'CPU ms/req':>11} {'server CPU ms/req':>18} {'other CPUs':>10}"
        )
        for concurrency in args.concurrency:
            n = int(concurrency / args.latency * args.seconds)
            src, out = args.workdir / f"distill_prompts_{n}.jsonl", args.workdir / f"distill_c{concurrency}.jsonl"
            write_prompts(src, n)
            ideal = concurrency / args.latency
            results: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
            runs = {
                "bare aiohttp": functools.partial(run_bare, url, n, concurrency, out),
                "distill": functools.partial(run_distill, src, out, url, n, concurrency, args.stream),
            }
            for i in range(args.repeat):
                for name in CLIENTS:
                    m = measure(runs[name], out, server.proc.pid)
                    results[name].append(m)
                    print(
                        row(
                            name,
                            concurrency,
                            str(i + 1),
                            n,
                            ideal,
                            n / m["seconds"],
                            m["steady"],
                            m["cpu"] / n * 1000,
                            m["server_cpu"] / n * 1000,
                            m["other"],
                        ),
                        flush=True,
                    )
            if args.repeat > 1:
                for name in CLIENTS:
                    med = {k: _median([m[k] for m in results[name]]) for k in results[name][0]}
                    print(
                        row(
                            name,
                            concurrency,
                            "median",
                            n,
                            ideal,
                            n / med["seconds"],
                            med["steady"],
                            med["cpu"] / n * 1000,
                            med["server_cpu"] / n * 1000,
                            med["other"],
                        ),
                        flush=True,
                    )
    finally:
        server.proc.terminate()
        server.proc.wait()


if __name__ == "__main__":
    main()
