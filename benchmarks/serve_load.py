"""Load test: `textcls serve` on loopback, driven by 1, 8 and 32 concurrent clients.

Each client sends one AG News dev text per request (`POST /v1/predict`) until the fixed request
count is reached. Printed per concurrency: requests/s, p50/p99 latency, errors, and the mean
number of texts per model call (from /healthz), which shows the micro-batcher at work. A last
row runs 32 clients against a server with micro-batching off (--max-batch 1) for contrast.

The clients run on the same machine as the server, so they take CPU from it: the figures are a
floor for what a separate client machine would see.

    python benchmarks/serve_load.py --run runs/agnews            # the default backend, auto
    python benchmarks/serve_load.py --run runs/agnews --backend onnx-int8
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import httpx
import numpy as np

from benchmarks import harness

log = logging.getLogger("benchmark")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, run_dir: Path, backend: str, extra: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "textcls",
            "serve",
            str(run_dir),
            "--port",
            str(self.port),
            "--backend",
            backend,
            "--no-access-log",
            *extra,
        ]
        # The server's log goes to a file: an unread pipe fills up and blocks the server.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                sys.exit(f"server exited: {self.log.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        self.stop()
        sys.exit("server did not start in 180 s")

    def counters(self) -> dict:
        return httpx.get(f"{self.url}/healthz").json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


async def drive(url: str, texts: list[str], clients: int, requests: int) -> dict:
    """`clients` concurrent keep-alive connections sending one-text requests until `requests` are done."""
    import aiohttp  # httpx's async pool caps the request rate far below what the server takes; aiohttp does not

    latencies: list[float] = []
    errors = 0
    issued = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued, errors
        while issued < requests:
            text = texts[issued % len(texts)]
            issued += 1
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/predict", json={"texts": [text]}) as response:
                    payload = await response.json()
                    ok = response.status == 200 and len(payload["predictions"]) == 1
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
        "errors": errors,
    }


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each thread of process `pid`, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        seconds[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def measure(server: Server, texts: list[str], clients: int, requests: int, label: str) -> dict:
    """One level; also where the CPU went: the server's busiest threads, its total, this client."""
    before = server.counters()
    server_before, client_before = thread_cpu_seconds(server.process.pid), os.times()
    row = asyncio.run(drive(server.url, texts, clients, requests))
    server_after, client_after = thread_cpu_seconds(server.process.pid), os.times()
    after = server.counters()
    used = sorted((server_after[t] - server_before.get(t, 0.0) for t in server_after), reverse=True)
    row["cpu_seconds"] = {
        "available": round(row["seconds"] * (os.cpu_count() or 1), 2),
        "server": round(sum(used), 2),
        "server_busiest_threads": [round(u, 2) for u in used[:3]],
        "client": round((client_after.user + client_after.system) - (client_before.user + client_before.system), 2),
    }
    batches = after["batches"] - before["batches"]
    row["texts_per_model_call"] = round(row["requests"] / batches, 2) if batches else None
    row["server"] = label
    log.info(
        "%-10s %3d clients: %7.1f req/s  p50 %6.1f ms  p99 %6.1f ms  errors %d  texts/call %s",
        label,
        clients,
        row["requests_per_second"],
        row["p50_ms"],
        row["p99_ms"],
        row["errors"],
        row["texts_per_model_call"],
    )
    return row


def main() -> None:
    parser = harness.parser(
        __doc__,
        "serve_load",
        data=("dev.csv",),
        run=True,
        repeats=3,
        help={"run": "Run folder to serve.", "repeats": "Passes over the concurrency levels (run-to-run spread)."},
    )
    parser.add_argument("--backend", default="auto", help="auto (the server's default), torch, onnx or onnx-int8.")
    parser.add_argument("--clients", default="1,8,32", help="Concurrency levels, comma-separated.")
    parser.add_argument("--requests", type=int, default=2000, help="Requests per concurrency level.")
    parser.add_argument("--threads", type=int, default=None, help="The server's model threads (default: one per core).")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="The server's texts per model call (default: the backend's)."
    )
    parser.add_argument("--spin", action="store_true", help="Keep ONNX Runtime's thread spinning on in the server.")
    parser.add_argument("--no-unbatched", action="store_true", help="Skip the row with micro-batching off.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    texts, _ = harness.read_ag_news(Path(args.data) / "dev.csv")
    head = harness.header("serve_load", args, packages=("onnxruntime",), onednn=True)  # the server may run ONNX
    levels = [int(c) for c in args.clients.split(",")]

    rows = []
    threads = [] if args.threads is None else ["--threads", str(args.threads)]
    threads += [] if args.batch_size is None else ["--batch-size", str(args.batch_size)]
    threads += ["--spin"] if args.spin else []
    server = Server(Path(args.run), args.backend, threads)
    model = httpx.get(f"{server.url}/v1/model").json()
    served = f"{model['backend']}" + (f" {model['precision']}" if model["backend"] == "torch" else "")
    log.info("the server runs %s (asked for %s)", served, args.backend)
    try:
        # Warm-up at the highest concurrency: ONNX Runtime's first call at a new batch size takes
        # longer (its memory arena grows), which would otherwise land in one level's p99.
        asyncio.run(drive(server.url, texts, max(levels), 4 * max(levels)))
        for repeat in range(args.repeats):
            for clients in levels:
                rows.append({**measure(server, texts, clients, args.requests, "batched"), "repeat": repeat})
    finally:
        server.stop()
    if not args.no_unbatched:
        server = Server(Path(args.run), args.backend, [*threads, "--max-batch", "1", "--max-wait-ms", "0"])
        try:
            asyncio.run(drive(server.url, texts, max(levels), 4 * max(levels)))
            rows.append(measure(server, texts, max(levels), args.requests, "unbatched"))
        finally:
            server.stop()

    print(
        f"\n`textcls serve {args.run} --backend {args.backend} {' '.join(threads)}` on loopback (running {served}), "
        f"{args.requests} requests of one text per level"
    )
    print(
        f"{'server':<10} {'pass':>4} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'texts/call':>11} {'CPU s: avail':>13} {'server':>7} {'client':>7}"
    )
    for row in rows:
        per_call = "-" if row["texts_per_model_call"] is None else f"{row['texts_per_model_call']:.1f}"
        print(
            f"{row['server']:<10} {row.get('repeat', '-')!s:>4} {row['clients']:>7} "
            f"{row['requests_per_second']:>8.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>7} "
            f"{per_call:>11} {row['cpu_seconds']['available']:>13.1f}"
            f" {row['cpu_seconds']['server']:>7.1f} {row['cpu_seconds']['client']:>7.1f}"
        )
    ratios = []
    for repeat in range(args.repeats):
        batched = {row["clients"]: row for row in rows if row["server"] == "batched" and row.get("repeat") == repeat}
        if min(levels) in batched and max(levels) in batched:
            ratios.append(
                round(batched[max(levels)]["requests_per_second"] / batched[min(levels)]["requests_per_second"], 2)
            )
    if ratios:
        print(
            f"throughput at {max(levels)} clients / at {min(levels)}: {', '.join(f'{r:.2f}x' for r in ratios)} "
            f"(median {float(np.median(ratios)):.2f}x); errors in all: {sum(row['errors'] for row in rows)}"
        )
    print(harness.describe(head))
    harness.write_result(
        args.output,
        head,
        {
            "served_backend": served,
            "backend_choice": model.get("backend_choice"),
            "rows": rows,
            "ratios_max_to_min_clients": ratios,
            "median_ratio": float(np.median(ratios)) if ratios else None,
        },
    )
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
