"""py-spy profiles of Latchkey's workers, one per harness scenario.

    python bench/profile.py --db sqlite --label before
    python bench/profile.py --db postgresql --label after -s refresh,introspection

Starts Latchkey as bench/compare.py does (no peer), then for each scenario
drives it with the shared harness's bench.py (wrk, 2 connections) while
``py-spy record --idle --format raw`` samples every worker. Only samples
taken inside a request count, waits included (a lock, a commit's fsync, a
database or Redis round trip); a worker waiting for a connection does not.
Writes bench/profiles/<label>-<db>-<scenario>.txt: the share of samples
per package and the frames that cost most (inclusive and
self), from the collapsed stacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import profiling  # noqa: E402
from bench.compare import SCENARIOS  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    PORT,
    SERVERS,
    LatchkeyServer,
    harness_copy,
    run_harness_bench,
)

PROFILES = ROOT / "bench" / "profiles"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--label", required=True, help="e.g. before, after")
    p.add_argument("-s", "--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--conns", type=int, default=2)
    p.add_argument("--server", choices=SERVERS, default="granian")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--env", action="append", default=[], metavar="LATCHKEY_X=VALUE")
    p.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "perf")
    return p.parse_args(argv)


def record(perf: Path, server, scenario: str, args, raw: Path) -> str:
    """Drive ``scenario`` with the harness while py-spy samples the server;
    py-spy runs until the harness is done (token pools are minted first,
    so a fixed duration would miss the load)."""
    spy = subprocess.Popen(
        [
            profiling.py_spy(),
            "record",
            "--pid",
            str(server.proc.pid),
            "--subprocesses",
            "--idle",
            "--nonblocking",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches
    try:
        # Small pools (--expected-rps): minting is not what is profiled.
        return run_harness_bench(
            perf,
            server.target,
            scenario,
            args.seconds,
            args.conns,
            "--expected-rps",
            "300",
        )
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)


def requests_only(raw: Path) -> Path:
    """The samples taken inside a request (profiling.in_request)."""
    kept = [
        line
        for line in raw.read_text().splitlines()
        if profiling.in_request(line.rpartition(" ")[0].split(";"))
    ]
    out = raw.with_suffix(".requests")
    out.write_text("\n".join(kept) + "\n")
    return out


def write_summary(out: Path, raw: Path, header: str) -> None:
    raw = requests_only(raw)
    lines = [
        header,
        "",
        "wall time inside requests (waits included), by package (innermost "
        "known frame):",
    ]
    lines += [f"  {share:5.1f}%  {name}" for share, name in profiling.by_package(raw)]
    frames = profiling.summarize(raw, top=400)
    # Frames every sample passes through (gunicorn's worker loop) say nothing.
    frames = [f for f in frames if f[0] < 99.0]
    lines += ["", "where the time is spent (self), top 25:", "  self%  incl%  frame"]
    lines += [
        f"  {own:5.1f}  {incl:5.1f}  {frame}"
        for incl, own, frame in sorted(frames, key=lambda f: -f[1])[:25]
        if own >= 0.3
    ]
    lines += ["", "what it is spent in (inclusive), top 45:", "  incl%   self%  frame"]
    lines += [f"  {incl:5.1f}  {own:6.1f}  {frame}" for incl, own, frame in frames[:45]]
    out.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a background shell job ignores) end the
    # run through the finally blocks: servers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    PROFILES.mkdir(exist_ok=True)
    import os

    os.environ["LATCHKEY_BENCH_PYTHON"] = sys.executable
    with tempfile.TemporaryDirectory(prefix="latchkey-prof-") as tmp:
        perf = harness_copy(args.harness, Path(tmp))
        server = LatchkeyServer(
            args.db,
            args.server,
            args.workers,
            args.threads,
            args.redis or None,
            args.port,
            dict(item.split("=", 1) for item in args.env),
        )
        try:
            for scenario in args.scenarios.split(","):
                raw = Path(tmp) / f"{scenario}.raw"
                report = record(perf, server, scenario, args, raw)
                stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                header = (
                    f"# {args.label}: {scenario} on {args.db}, {args.server} "
                    f"x{args.workers}, wrk -c{args.conns} -d{args.seconds}s, "
                    + (f"{' '.join(args.env)}, " if args.env else "")
                    + f"py-spy --idle 250 Hz, {stamp}\n# harness bench.py:\n"
                    + "\n".join("#   " + line for line in report.splitlines())
                )
                out = PROFILES / f"{args.label}-{args.db}-{scenario}.txt"
                write_summary(out, raw, header)
                print(out.read_text()[:3000])
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
