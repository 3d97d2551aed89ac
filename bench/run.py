"""Latchkey benchmarks against a live gunicorn server on 127.0.0.1.

    python bench/run.py --db sqlite|postgresql [--seconds N] [--concurrency C]

Makes a fresh database (a temp SQLite file, or a new PostgreSQL database
latchkey_bench_<random> that is dropped at the end), migrates it, seeds
clients, accounts and grants with the app's services, starts gunicorn and
measures client-credentials grants, rotating refresh grants and
introspections per second, then the time of "sign out of all devices" for
accounts with 10, 1,000 and 100,000 grants. Prints a table and writes
bench/results-<db>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from app import create_app  # noqa: E402
from bench import cpu, data, load, profiling, server, signout  # noqa: E402

BENCH_DIR = ROOT / "bench"
# A run during which other programs used more than this share of one core
# is marked "disturbed" in the results.
DISTURBED_PCT = 20


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], required=True)
    p.add_argument("--seconds", type=float, default=10, help="per measured run")
    p.add_argument("--repeat", type=int, default=3, help="measured runs per test")
    p.add_argument("--warmup", type=float, default=3, help="seconds before each")
    p.add_argument("--concurrency", type=int, default=16, help="connections")
    p.add_argument("--workers", type=int, default=2, help="gunicorn -w")
    p.add_argument(
        "--threads", type=int, default=1, help="gunicorn --threads (1: sync workers)"
    )
    p.add_argument(
        "--driver",
        choices=["wrk", "python"],
        default="wrk" if load.wrk_available() else "python",
    )
    p.add_argument(
        "--signout-sizes",
        default="10,1000,100000",
        help="grants per account, comma-separated",
    )
    p.add_argument("--runs", type=int, default=9, help="sign-out repetitions")
    p.add_argument(
        "--no-ratelimit",
        action="store_true",
        help="LATCHKEY_RATELIMIT_ENABLED=false (to see what the limiter costs)",
    )
    p.add_argument("--only", default="cc,refresh,introspect,signout")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="wait up to this many seconds for an idle machine before each run",
    )
    p.add_argument("--profile", type=Path, help="py-spy the workers into DIR")
    p.add_argument("--pg-admin-url", default=data.PG_ADMIN_URL)
    p.add_argument("--out", type=Path, help="default bench/results-<db>.json")
    return p.parse_args(argv)


def machine_info(database: data.Database) -> dict:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    wrk = None
    if load.wrk_available():
        done = subprocess.run(
            ["wrk", "-v"], capture_output=True, text=True, check=False
        )
        wrk = (done.stdout or done.stderr).splitlines()[0]
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "database": database.server_version(),
        "memory_gib": round(int(memory) / 2**20, 1),
        "wrk": wrk,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "app", "migrations")),
    }


def _git(*args) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def access_token_for(url: str, fx: data.Fixtures, chain: str) -> str:
    """A live user access token (with its grant id), from one refresh."""
    answer = requests.post(
        url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": chain},
        auth=fx.app_client,
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def _basic(client: tuple[str, str]) -> dict:
    raw = f"{client[0]}:{client[1]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def sql_per_request(app, fx: data.Fixtures, chain: str) -> dict:
    """The statements one request of each kind runs (in-process, with the
    Flask test client; the refresh chain ``chain`` is used up)."""
    tokens = [chain]
    access: list[str] = []

    def cc(client):
        return client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(fx.cc_client),
        )

    def refresh(client):
        answer = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens[-1]},
            headers=_basic(fx.app_client),
        )
        if answer.status_code == 200:
            tokens.append(answer.json["refresh_token"])
            access.append(answer.json["access_token"])
        return answer

    def introspect(client):
        return client.post(
            "/introspect", data={"token": access[0]}, headers=_basic(fx.rs_client)
        )

    return {
        "cc": profiling.count_statements(app, cc),
        "refresh": profiling.count_statements(app, refresh),
        "introspect": profiling.count_statements(app, introspect),
    }


def run_scenario(args, srv, make) -> dict:
    """A warm-up run, then ``--repeat`` measured runs; ``make(i)`` gives the
    scenario of run i (0 is the warm-up; refresh chains are never reused)."""
    if args.warmup > 0:
        load.run_load(args.driver, srv.url, make(0), args.warmup, args.concurrency)
    runs = []
    for i in range(1, args.repeat + 1):
        scenario = make(i)
        if args.quiet_wait:
            cpu.wait_for_quiet(args.quiet_wait)
        spy = None
        if args.profile and i == 1:
            args.profile.mkdir(parents=True, exist_ok=True)
            out = args.profile / f"{args.db}-{scenario.name}.txt"
            spy = profiling.start_py_spy(srv.proc.pid, args.seconds, out)
        db_name = args.db_name if args.db == "postgresql" else None
        with cpu.CpuMeter([srv.proc.pid, *srv.worker_pids()], db_name) as meter:
            result = load.run_load(
                args.driver, srv.url, scenario, args.seconds, args.concurrency
            )
        # Another program took a good share of the CPU: say so in the results.
        disturbed = meter.use.others > DISTURBED_PCT
        runs.append(
            {**result.as_dict(), "cpu": meter.use.as_dict(), "disturbed": disturbed}
        )
        print(
            f"{scenario.name:>12}: {result.rps:8.1f} req/s  "
            f"p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  "
            f"failures {result.failures}  cpu {meter.use.as_dict()}"
            f"{'  DISTURBED' if disturbed else ''}",
            flush=True,
        )
        if spy is not None:
            spy.wait(timeout=args.seconds + 60)
            print(f"\nprofile of {scenario.name} ({out}):")
            for share, package in profiling.by_package(out):
                print(f"  {share:5.1f}%  {package}")
            for incl, own, frame in profiling.summarize(out):
                print(f"  {incl:5.1f}% incl {own:5.1f}% self  {frame}")
    median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {
        "median_rps": median["rps"],
        "p50_ms": median["p50_ms"],
        "p99_ms": median["p99_ms"],
        "failures": sum(r["failures"] for r in runs),
        "runs": runs,
    }


def load_tests(args, srv, fx: data.Fixtures, spare: list[str]) -> dict:
    c = args.concurrency
    wanted = args.only.split(",")
    results = {}
    if "cc" in wanted:
        cc = load.Scenario(
            "cc", "/token", fx.cc_client, form={"grant_type": "client_credentials"}
        )
        results["cc"] = run_scenario(args, srv, lambda i: cc)
    if "refresh" in wanted:

        def rotate(i):
            chains = fx.chains[i * c : (i + 1) * c]
            return load.Scenario("refresh", "/token", fx.app_client, chains=chains)

        results["refresh"] = run_scenario(args, srv, rotate)
    if "introspect" in wanted:
        token = access_token_for(srv.url, fx, spare[0])
        intro = load.Scenario(
            "introspect", "/introspect", fx.rs_client, form={"token": token}
        )
        results["introspect"] = run_scenario(args, srv, lambda i: intro)
    return results


def signout_tests(args, app, srv, fx: data.Fixtures) -> dict:
    out = {}
    for size in [int(s) for s in args.signout_sizes.split(",") if s]:
        t0 = time.perf_counter()
        account = data.seed_signout_account(app, size, fx.app_client[0])
        seeded = time.perf_counter() - t0
        if args.quiet_wait:
            cpu.wait_for_quiet(args.quiet_wait)
        result = signout.measure(app, srv.url, fx.rs_client, account, args.runs)
        result["seed_seconds"] = round(seeded, 1)
        out[str(size)] = result
        print(
            f"{'sign-out ' + str(size):>16}: service {result['service_median_ms']:.2f}"
            f" ms (control {result['service_no_revive_median_ms']:.2f} ms)"
            f"  HTTP {result['http_median_ms']:.2f} ms  (seeded in {seeded:.1f} s,"
            f" cut-off seen: {result['cut_off_seen_by_introspection']})",
            flush=True,
        )
    sizes = sorted(out, key=int)
    if len(sizes) > 1:
        small, big = out[sizes[0]], out[sizes[-1]]
        out["ratio_largest_to_smallest"] = {
            "service": round(big["service_median_ms"] / small["service_median_ms"], 2),
            "service_no_revive": round(
                big["service_no_revive_median_ms"]
                / small["service_no_revive_median_ms"],
                2,
            ),
            "http": round(big["http_median_ms"] / small["http_median_ms"], 2),
        }
    return out


def print_table(report: dict) -> None:
    print(f"\nLatchkey on {report['machine']['database']}, {report['server']}")
    print(f"driver {report['driver']}, {report['concurrency']} connections\n")
    print(f"{'benchmark (median run)':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, r in report["load"].items():
        each = ", ".join(
            f"{x['rps']:.0f}{'*' if x['disturbed'] else ''}" for x in r["runs"]
        )
        print(
            f"{name:<28}{r['median_rps']:>10.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"   runs: {each}; failures {r['failures']}"
        )
    signouts = report.get("signout", {})
    if signouts:
        print(
            f"\n{'sign out of all devices':<28}{'service ms':>12}{'control ms':>12}"
            f"{'HTTP ms':>10}"
        )
        for size, r in signouts.items():
            if size.isdigit():
                print(
                    f"{int(size):>20,} grants{r['service_median_ms']:>12.2f}"
                    f"{r['service_no_revive_median_ms']:>12.2f}"
                    f"{r['http_median_ms']:>10.2f}"
                )
        for size, r in signouts.items():
            if size.isdigit():
                print(
                    f"{'':<8}SQL statements per service call ({int(size):,} grants):"
                    f" {len(r['service_statements'])}"
                )
        ratio = signouts.get("ratio_largest_to_smallest")
        if ratio:
            print(
                f"{'ratio largest/smallest':<28}{ratio['service']:>12}"
                f"{ratio['service_no_revive']:>12}{ratio['http']:>10}"
            )
    print("(* a run during which other programs used the CPU: see results JSON)")
    for name, statements in report["sql_per_request"].items():
        print(f"\nSQL statements per {name} request: {len(statements)}")
        for s in statements:
            print(f"  {s}")


def main(argv=None) -> int:
    args = parse_args(argv)
    c = args.concurrency
    database = data.Database(args.db, args.pg_admin_url)
    args.db_name = database.name
    srv = None
    try:
        port = server.free_port()
        env = server.latchkey_env(database.url, port)
        if args.no_ratelimit:
            env["LATCHKEY_RATELIMIT_ENABLED"] = "false"
        app = create_app(dict(env))
        used = (args.repeat + 1) * c
        fx = data.migrate_and_seed(app, chains=used + 2)
        spare = fx.chains[used:]
        sql = sql_per_request(app, fx, spare[1])
        log = Path(tempfile.gettempdir()) / f"latchkey-bench-{args.db}-{port}.log"
        srv = server.Server(env, port, args.workers, args.threads, log)
        print(f"gunicorn: {' '.join(srv.command[1:])} (log {log})", flush=True)
        report = {
            "db": args.db,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(database),
            "server": f"gunicorn -w {args.workers} --threads {args.threads}",
            "rate_limits": "off" if args.no_ratelimit else "on (memory storage)",
            "driver": args.driver,
            "concurrency": c,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "load": load_tests(args, srv, fx, spare),
            "sql_per_request": sql,
        }
        if "signout" in args.only.split(","):
            report["signout"] = signout_tests(args, app, srv, fx)
    finally:
        if srv is not None:
            srv.stop()
        database.drop()
    out = args.out or BENCH_DIR / f"results-{args.db}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
