"""Load generators: Debian's wrk with a Lua script (default), or a pool of
threads each with its own requests.Session (``--driver python``, for a
machine without wrk; it needs far more CPU per request, which the server
then lacks on a 2-core machine).

Both run for a fixed time with a fixed number of connections, against
127.0.0.1 only, and report completed requests, failures and latency.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests

WRK_DIR = Path(__file__).resolve().parent / "wrk"


@dataclass
class Scenario:
    """One kind of request: a fixed POST, or refresh chains (one per
    connection, each request using the token the previous answer gave)."""

    name: str
    path: str
    client: tuple[str, str]  # client_secret_basic credentials
    form: dict | None = None
    chains: list[str] | None = None

    def auth_header(self) -> str:
        raw = f"{self.client[0]}:{self.client[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass
class LoadResult:
    name: str
    driver: str
    connections: int
    requests: int
    seconds: float
    failures: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rps": round(self.rps, 1)}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    driver: str, url: str, scenario: Scenario, seconds: float, connections: int
) -> LoadResult:
    if scenario.chains is not None and len(scenario.chains) < connections:
        raise ValueError("need one refresh chain per connection")
    if driver == "wrk":
        return _run_wrk(url, scenario, seconds, connections)
    return _run_python(url, scenario, seconds, connections)


# -- wrk -------------------------------------------------------------------
def _run_wrk(url: str, scenario: Scenario, seconds: float, conns: int) -> LoadResult:
    env = {**os.environ, "BENCH_AUTH": scenario.auth_header()}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as tokens:
        if scenario.chains is not None:
            tokens.write("\n".join(scenario.chains[:conns]) + "\n")
            tokens.flush()
            env["BENCH_TOKENS"] = tokens.name
            script, threads = WRK_DIR / "refresh.lua", conns
        else:
            env["BENCH_PATH"] = scenario.path
            env["BENCH_BODY"] = urlencode(scenario.form or {})
            script, threads = WRK_DIR / "post.lua", min(2, conns)
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    match = re.search(r"^BENCH_JSON (\{.*\})$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    return LoadResult(
        name=scenario.name,
        driver="wrk",
        connections=conns,
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        failures=r["status_errors"] + r["socket_errors"] + r["chain_failures"],
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
    )


# -- python ----------------------------------------------------------------
def _run_python(url: str, scenario: Scenario, seconds: float, conns: int) -> LoadResult:
    latencies: list[list[float]] = [[] for _ in range(conns)]
    failures = [0] * conns
    start_gate = threading.Barrier(conns + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        session = requests.Session()
        session.auth = scenario.client
        token = scenario.chains[i] if scenario.chains is not None else None
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            form = scenario.form or {
                "grant_type": "refresh_token",
                "refresh_token": token,
            }
            t0 = time.perf_counter()
            try:
                answer = session.post(url + scenario.path, data=form, timeout=10)
            except requests.RequestException:
                failures[i] += 1
                continue
            latencies[i].append(time.perf_counter() - t0)
            if answer.status_code != 200:
                failures[i] += 1
            elif token is not None:
                token = answer.json().get("refresh_token", token)
        session.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in pool:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_gate.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    done = sorted(x for per in latencies for x in per)

    def pct(p: float) -> float:
        return done[min(len(done) - 1, int(p * len(done)))] * 1000 if done else 0.0

    return LoadResult(
        name=scenario.name,
        driver="python",
        connections=conns,
        requests=len(done),
        seconds=elapsed,
        failures=sum(failures),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
    )
