"""Resident memory of each worker under mixed load for ten minutes.

    python bench/memory.py --db postgresql --minutes 10

Starts Latchkey as bench/compare.py does (production settings, Redis),
then drives it with the shared harness's bench.py over all six scenarios
in turn (16 connections, 20 s each, round after round) until the time is
up, sampling every worker's VmRSS (/proc/<pid>/status) every 10 s.
Prints each worker's RSS at the start, its peak and at the end, in MB.
The target of issue 13 is at most 150 MB per worker after ten minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.compare import SCENARIOS  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    SERVERS,
    LatchkeyServer,
    harness_copy,
    run_harness_bench,
)


def workers(master: int) -> list[int]:
    """The master's child processes (the workers)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--server", choices=SERVERS, default="granian")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "perf")
    args = p.parse_args(argv)

    server = LatchkeyServer(
        args.db,
        args.server,
        args.workers,
        args.threads,
        redis="redis://127.0.0.1:6379/0",
    )
    samples: dict[int, list[float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in workers(server.proc.pid):
                with contextlib.suppress(FileNotFoundError):  # a worker exited
                    samples.setdefault(pid, []).append(rss_mb(pid))
            done.wait(10)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    requests = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            perf = harness_copy(args.harness, Path(tmp))
            deadline = time.monotonic() + args.minutes * 60
            while time.monotonic() < deadline:
                for scenario in SCENARIOS:
                    if time.monotonic() >= deadline:
                        break
                    run_harness_bench(perf, server.target, scenario, 20, args.conns)
                    requests += 1
    finally:
        done.set()
        sampler.join()
        server.stop()
    print(
        f"{args.server}, {args.workers} workers, {args.db}, {args.minutes} min, "
        f"{requests} scenario runs of 20 s at {args.conns} connections"
    )
    print("| worker | start MB | peak MB | end MB |")
    print("| --- | ---: | ---: | ---: |")
    for pid, values in samples.items():
        print(f"| {pid} | {values[0]:.0f} | {max(values):.0f} | {values[-1]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
