"""Benchmark: `distill` against the project's test server with a fixed latency per request.

Usage: python bench/bench_distill.py [--latency 0.1] [--concurrency 16 64 256] [--seconds 8] [--stream]
                                     [--workdir bench/out]

The server (tests/openai_server.py) runs in its own process and answers every request after exactly
``--latency`` seconds, so a client that adds no overhead would finish ``concurrency / latency`` requests per
second: that ideal is the baseline. For each concurrency the benchmark prints the achieved requests/s (over the
request phase, from the first request to the last record written), the ratio to the ideal (target ≥ 0.9 at 64
and 256), the client's CPU time per request (the whole call: reading SRC, resuming, requests, writing) and the
server's. A bare aiohttp client (same requests and start ramp, reply parsed and appended to a file, nothing
else) runs first in the same conditions: the gap between the two is distill's own cost. Client and server
share the machine's CPUs, so the load average of other processes is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lf_reasoning.distill import distill  # noqa: E402
from lf_reasoning.distill.run import RAMP_S  # noqa: E402


async def bare_client(url: str, n: int, concurrency: int, out: Path) -> float:
    """The least any client must do: aiohttp requests from ``concurrency`` workers (started over the same ramp),
    each reply parsed and appended to a file. Returns the seconds taken."""
    body = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Problem: what is 6 * 7?"}]})
    jobs = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=900)) as session:
        with open(out, "wb", buffering=0) as f:

            async def worker(delay: float) -> None:
                await asyncio.sleep(delay)
                for _ in jobs:
                    async with session.post(url + "/chat/completions", data=body,
                                            headers={"Content-Type": "application/json"}) as resp:
                        reply = orjson.loads(await resp.read())
                    f.write(orjson.dumps(reply["choices"][0]["message"]) + b"\n")

            started = time.perf_counter()
            await asyncio.gather(*(worker(i * RAMP_S / concurrency) for i in range(concurrency)))
            return time.perf_counter() - started


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def write_prompts(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"question": f"Problem {i}: what is {i} * {i + 1}?", "answer": str(i * (i + 1))})
                    + b"\n")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process ``pid`` (read from /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each run")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    server, url = start_server(args.latency)
    try:
        print(f"server {url}, latency {args.latency * 1000:.0f} ms, {'streaming' if args.stream else 'non-streaming'} "
              f"(the bare baseline never streams); {os.cpu_count()} CPUs, load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'client':>12} {'concurrency':>11} {'requests':>9} {'ideal req/s':>12} {'achieved':>9} {'ratio':>6} "
              f"{'CPU ms/req':>11} {'server CPU ms/req':>18}")
        for concurrency in args.concurrency:
            n = int(concurrency / args.latency * args.seconds)
            src, out = args.workdir / f"distill_prompts_{n}.jsonl", args.workdir / f"distill_c{concurrency}.jsonl"
            write_prompts(src, n)
            ideal = concurrency / args.latency
            for name in ("bare aiohttp", "distill"):
                out.unlink(missing_ok=True)
                cpu, server_cpu = cpu_seconds(), cpu_seconds(server.pid)
                if name == "distill":
                    report = distill([str(src)], out, base_url=url, model="bench", concurrency=concurrency,
                                     stream=args.stream, api_key_env="BENCH_NO_KEY")
                    assert report.done == n and not report.failed, report
                    seconds = report.seconds
                else:
                    seconds = asyncio.run(bare_client(url, n, concurrency, out))
                cpu, server_cpu = cpu_seconds() - cpu, cpu_seconds(server.pid) - server_cpu
                achieved = n / seconds
                print(f"{name:>12} {concurrency:>11} {n:>9} {ideal:>12.0f} {achieved:>9.0f} {achieved / ideal:>6.2f} "
                      f"{cpu / n * 1000:>11.3f} {server_cpu / n * 1000:>18.3f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
