"""Latchkey against the reference provider, side by side, in one command.

    python bench/compare.py --db sqlite --conns 2,16
    python bench/compare.py --db sqlite,postgresql --conns 2,16 --record

Copies the shared harness (../shared/perf, read-only) into a temp folder,
starts its peer (node oidc-provider, in memory, one process), makes a
fresh database, starts Latchkey on it (bench/sidebyside.py: gunicorn on
127.0.0.1:5100, production settings, Redis rate limits) and runs the
harness's compare.py (interleaved A/B slices, medians of rounds) for every
database and connection count asked for. Prints Latchkey/peer ratios for
the six scenarios, writes the summaries to bench/results/, and with
--record appends the table and this exact command to bench/README.md.
Everything it started is stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sidebyside import (  # noqa: E402
    PORT,
    SERVERS,
    LatchkeyServer,
    harness_copy,
)

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
SCENARIOS = (
    "client_credentials",
    "introspection",
    "refresh",
    "revocation",
    "jwks",
    "discovery",
)
# Latchkey's refresh answers carry no id_token, so by default the peer's
# refresh tokens are minted without openid (its peer-noid target) and both
# sides do the same work; --peer full compares with the id_token peer.
PEER_TARGETS = {"noid": "peer-noid.json", "full": "peer.json"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", help="sqlite, postgresql or both")
    p.add_argument("--conns", default="2,16", help="wrk connections, comma list")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="s per side per round")
    p.add_argument("--slices", type=int, default=5)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--server", choices=SERVERS, default="granian")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4, help="gthread / granian")
    p.add_argument("--peer", choices=sorted(PEER_TARGETS), default="noid")
    p.add_argument("--peer-port", type=int, default=3100)
    p.add_argument("--port", type=int, default=PORT, help="Latchkey's port")
    p.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="rate-limit store, as in production; '' for in-process memory",
    )
    p.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "perf")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="LATCHKEY_X=VALUE",
        help="an extra setting for Latchkey (repeatable)",
    )
    p.add_argument("--record", action="store_true", help="append to README.md")
    p.add_argument("--note", default="", help="one line recorded with --record")
    return p.parse_args(argv)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Peer:
    """The harness's peer on ``port``, and its target file for that port."""

    def __init__(self, perf: Path, port: int, flavour: str):
        if not _port_free(port):
            raise SystemExit(f"port {port} is taken; pass --peer-port")
        self.perf, self.port = perf, port
        text = (perf / "targets" / PEER_TARGETS[flavour]).read_text()
        self.target = perf / "targets" / f"peer-{flavour}-{port}.json"
        self.target.write_text(text.replace("3100", str(port)))
        subprocess.run([str(perf / "peer-op" / "start.sh"), str(port)], check=True)

    def stop(self) -> None:
        subprocess.run([str(self.perf / "peer-op" / "stop.sh"), str(self.port)])


def run_harness(perf: Path, target: Path, peer: Path, conns: int, args, out: Path):
    """The harness's compare.py, Latchkey as A and the peer as B."""
    command = [
        sys.executable,
        str(perf / "compare.py"),
        str(target),
        str(peer),
        "-s",
        args.scenarios,
        "-r",
        str(args.rounds),
        "-d",
        str(args.duration),
        "--slices",
        str(args.slices),
        "-w",
        str(args.warmup),
        "-t",
        str(min(2, conns)),
        "-c",
        str(conns),
        "-o",
        str(out),
    ]
    print("+", shlex.join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=perf)
    return json.loads(out.read_text())


def table(results: list[tuple[str, int, dict]]) -> str:
    """Markdown: one row per scenario, one column per (database, conns)."""
    heads = [f"{db}, {c} conns" for db, c, _ in results]
    lines = [
        "| scenario | " + " | ".join(heads) + " |",
        "| --- | " + " | ".join("---:" for _ in heads) + " |",
    ]
    by_key = {
        (db, c): {row["scenario"]: row for row in res["summary"]}
        for db, c, res in results
    }
    scenarios = [row["scenario"] for row in results[0][2]["summary"]]
    for scenario in scenarios:
        cells = []
        for db, c, _ in results:
            row = by_key[(db, c)].get(scenario)
            cells.append(_cell(row) if row else "—")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Each cell: Latchkey/peer req/s, median of rounds (min-max of rounds); "
        "Latchkey req/s · p99 ms; eff = the ratio of requests per second of "
        "server CPU; errors Latchkey/peer."
    )
    return "\n".join(lines)


def _cell(row: dict) -> str:
    ratio = row["ratio_median_of_rounds"]
    eff = row["cpu_efficiency_ratio_median"]
    return (
        f"**{ratio:.2f}x** ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}); "
        f"{row['A_rps_median']:,.0f}/s · p99 {row['A_p99_ms_median']:.1f}; "
        f"eff {eff:.2f}; err {row['A_errors']}/{row['B_errors']}"
        if ratio is not None and eff is not None
        else "n/a"
    )


def record(text: str, command: str, started: str, args) -> None:
    entry = [
        "",
        f"### Run of {started} UTC",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Latchkey: {args.server}, {args.workers} workers"
        + (f" x {args.threads} threads" if args.server != "sync" else "")
        + f"; rate limits in {'Redis' if args.redis else 'memory'}; "
        f"peer: {PEER_TARGETS[args.peer]}; commit {_commit()}; "
        f"load average at start {os.getloadavg()[0]:.1f}."
        + (f" Settings: {', '.join(args.env)}." if args.env else "")
        + (f" {args.note}" if args.note else ""),
        "",
        text,
        "",
    ]
    with README.open("a") as fh:
        fh.write("\n".join(entry))


def _commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "app", "migrations"],
        cwd=ROOT,
        capture_output=True,
    )
    if head.returncode != 0:
        return "(not a git checkout; see the note)"
    return head.stdout.decode().strip() + ("+changes" if dirty.stdout else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a background shell job ignores) end the
    # run through the finally blocks: servers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    command = "python bench/compare.py " + shlex.join(argv or sys.argv[1:])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if not _port_free(args.port):
        raise SystemExit(f"port {args.port} is taken; pass --port")
    os.environ["LATCHKEY_BENCH_PYTHON"] = sys.executable  # for the mint commands
    results: list[tuple[str, int, dict]] = []
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="latchkey-perf-") as tmp:
        perf = harness_copy(args.harness, Path(tmp))
        peer = Peer(perf, args.peer_port, args.peer)
        try:
            for db in args.db.split(","):
                server = LatchkeyServer(
                    db,
                    args.server,
                    args.workers,
                    args.threads,
                    args.redis or None,
                    args.port,
                    dict(item.split("=", 1) for item in args.env),
                )
                try:
                    for conns in [int(c) for c in args.conns.split(",")]:
                        out = Path(tmp) / f"compare-{db}-c{conns}.json"
                        res = run_harness(
                            perf, server.target, peer.target, conns, args, out
                        )
                        results.append((db, conns, res))
                        keep = {"meta": res["meta"], "summary": res["summary"]}
                        name = f"sidebyside-{stamp}-{db}-c{conns}.json"
                        (RESULTS / name).write_text(json.dumps(keep, indent=1))
                finally:
                    server.stop()
        finally:
            peer.stop()
    text = table(results)
    print()
    print(text)
    if args.record:
        record(text, command, started, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
