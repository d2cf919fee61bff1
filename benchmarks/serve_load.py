"""Load test of `tfp-aline serve`: N concurrent clients send a fixed number of advice requests for
30-day histories; prints p50/p95/p99 latency, throughput and errors beside the in-process advise latency
of the same histories, then sends malformed requests (every class in `tfp_aline.migraine.service.probes`) and
checks that all get a 4xx with a message and that the service is still healthy.

Starts the service itself on a free local port (or uses --url), from the run given:

    python benchmarks/serve_load.py --run models/migraine --clients 16 --requests 2000 --malformed 200 [--threads 1]

Needs the `serve` extra and httpx. The clients run in this process (asyncio), on the same machine.
"""

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tfp_aline.migraine.service import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DAYS  # noqa: E402
from tfp_aline.migraine.service.command import limit_threads  # noqa: E402
from tfp_aline.migraine.service.launch import ServerProcess  # noqa: E402
from tfp_aline.migraine.service.probes import bad_requests, histories, read_days  # noqa: E402

WARMUP = 50


def percentiles_ms(seconds) -> str:
    p50, p95, p99 = (1e3 * np.percentile(seconds, q) for q in (50, 95, 99))
    return f"p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  p99 {p99:7.2f} ms"


def cpu_seconds(pid) -> float:
    """User + system CPU time of a process (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(run, bodies, calls):
    """Latency of the same advice computed in this process (no HTTP): the reader, the network and the
    JSON-able result, as the service computes them per request."""
    from tfp_aline.migraine.service.advice_service import AdviceService

    service = AdviceService(run)
    cycle = itertools.cycle(bodies)
    for _ in range(WARMUP):
        service.advise(next(cycle)["days"])
    times, cpu = [], time.process_time()
    for _ in range(calls):
        days = next(cycle)["days"]
        start = time.perf_counter()
        service.advise(days)
        times.append(time.perf_counter() - start)
    return times, (time.process_time() - cpu) / calls


async def load(url, bodies, clients, requests):
    """`clients` closed-loop clients share `requests` requests; returns (latencies s, errors, wall s)."""
    counter = itertools.count()
    latencies, errors = [], []

    async def client(http):
        while (i := next(counter)) < requests:
            start = time.perf_counter()
            try:
                r = await http.post("/advice", json=bodies[i % len(bodies)])
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as http:
        for body in bodies[:WARMUP]:  # untimed: connections opened, server warm
            await http.post("/advice", json=body)
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, errors, wall


def malformed(url, days, count, max_days, max_body_bytes):
    """Send `count` bad requests cycling through every class; returns [(class, status, problem)] of failures."""
    probes = bad_requests(days, max_days=max_days, max_body_bytes=max_body_bytes)
    failures, statuses = [], {}
    with httpx.Client(base_url=url, timeout=60.0) as http:
        for probe in itertools.islice(itertools.cycle(probes), count):
            r = http.post("/advice", content=probe.body, headers={"content-type": probe.content_type})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            try:
                message = r.json().get("error", "")
            except ValueError:
                message = ""
            if not (400 <= r.status_code < 500 and message and probe.expect in message):
                failures.append((probe.name, r.status_code, r.text[:200]))
        healthy = http.get("/health").status_code == 200
    return len(probes), statuses, failures, healthy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("models/migraine"), help="trained run dir")
    parser.add_argument("--url", default=None, help="a running service (default: start one on a free port)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30, help="days per history (windows of data/example_person.csv)")
    parser.add_argument("--in-process-calls", type=int, default=500)
    parser.add_argument("--malformed", type=int, default=200, help="bad requests to send after the load")
    parser.add_argument("--server-log", type=Path, default=None, help="where the started server writes its log")
    parser.add_argument("--threads", type=int, default=1, help="`serve --threads` (BLAS threads), the same in-process")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be positive")

    days = read_days()
    bodies = [{"days": h} for h in histories(days, args.days)]
    log = open(args.server_log, "w") if args.server_log else None  # noqa: SIM115
    limit_threads(args.threads)  # the in-process calls get the BLAS threads the service gets
    server = None if args.url else ServerProcess(args.run, args=("--threads", str(args.threads)), log=log)
    url = args.url or server.url
    try:
        local, local_cpu = in_process(args.run, bodies, args.in_process_calls)
        server_cpu, client_cpu = (cpu_seconds(server.proc.pid) if server else 0.0), time.process_time()
        latencies, errors, wall = asyncio.run(load(url, bodies, args.clients, args.requests))
        # Includes the untimed warm-up requests; per request, so it hardly matters.
        sent = args.requests + min(WARMUP, len(bodies))
        server_cpu = (cpu_seconds(server.proc.pid) - server_cpu) / sent if server else float("nan")
        client_cpu = (time.process_time() - client_cpu) / sent
        n_probes, statuses, failures, healthy = malformed(
            url, days, args.malformed, DEFAULT_MAX_DAYS, DEFAULT_MAX_BODY_BYTES
        )
        alive = server is None or server.alive()
    finally:
        if server is not None:
            server.stop()

    print(
        f"service {url}: {len(bodies)} distinct {args.days}-day histories, {args.clients} concurrent clients, "
        f"{args.requests} requests; cpus available to this process: {len(os.sched_getaffinity(0))}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rate = args.requests / wall
    print(f"  HTTP       {percentiles_ms(latencies)}  throughput {rate:7.1f} req/s  errors {len(errors)}")
    print(
        f"  in-process {percentiles_ms(local)}  ({args.in_process_calls} sequential calls, same histories; "
        f"CPU {1e3 * local_cpu:.2f} ms per call)"
    )
    print(f"  p50 HTTP / in-process: {np.median(latencies) / np.median(local):.2f}x")
    print(
        f"  CPU per request: server {1e3 * server_cpu:.2f} ms, clients (this process) {1e3 * client_cpu:.2f} ms; "
        f"wall time per request {1e3 * wall / args.requests:.2f} ms"
    )
    for e in errors[:5]:
        print(f"  error: {e}")
    print(
        f"malformed: {args.malformed} requests over {n_probes} classes; statuses {dict(sorted(statuses.items()))}; "
        f"{len(failures)} not answered 4xx with the expected message; healthy after: {healthy and alive}"
    )
    for name, status, text in failures[:10]:
        print(f"  {name}: {status} {text}")
    return 0 if not errors and not failures and healthy and alive else 1


if __name__ == "__main__":
    sys.exit(main())
