"""CPU per request, in process: the app called as a WSGI callable, no
server, no sockets, no load generator.

    python bench/inproc.py --db sqlite -n 2000
    python bench/inproc.py --db postgresql -s client_credentials --profile

On a shared 2-core machine a side-by-side run (bench/compare.py) is the only
fair comparison with the peer; this script answers a narrower question
with far less noise: how many microseconds of this process's CPU one
request of each scenario costs (``time.process_time``), with the same
production settings, the same seeded database and the same Redis as
bench/compare.py. ``--profile`` prints cProfile's top frames for each
scenario. Waits (a commit's fsync, a round trip) are not CPU and do not
show here; bench/profile.py samples those.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/profile.py would shadow the standard library's profile module,
# which cProfile imports: the script's own folder goes off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse  # noqa: E402
import base64  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.compare import SCENARIOS  # noqa: E402
from bench.data import Database  # noqa: E402
from bench.sidebyside import TARGET, latchkey_env, seed  # noqa: E402


def _basic(section: dict) -> str:
    pair = f"{section['client_id']}:{section['client_secret']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _environ(method: str, path: str, body: bytes = b"", auth: str = "") -> dict:
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5100",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:5100",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        environ["CONTENT_LENGTH"] = str(len(body))
    if auth:
        environ["HTTP_AUTHORIZATION"] = auth
    return environ


def _call(app, environ: dict) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], body


def requests_for(app, scenario: str, n: int) -> list[dict]:
    """``n`` WSGI environs of ``scenario``; pools minted as bench/mint.py does."""
    from bench import mint

    target = json.loads(TARGET.read_text())
    cc, rs = target["client_credentials"], target["introspection"]
    if scenario == "client_credentials":
        body = b"grant_type=client_credentials"
        return [_environ("POST", "/token", body, _basic(cc)) for _ in range(n)]
    if scenario == "jwks":
        return [_environ("GET", "/jwks.json") for _ in range(n)]
    if scenario == "discovery":
        path = "/.well-known/openid-configuration"
        return [_environ("GET", path) for _ in range(n)]
    with app.app_context():
        if scenario == "refresh":
            tokens = mint.mint_refresh(n)
            rp = target["refresh"]
            return [
                _environ(
                    "POST",
                    "/token",
                    f"grant_type=refresh_token&refresh_token={t}".encode(),
                    _basic(rp),
                )
                for t in tokens
            ]
        tokens = mint.mint_access(app, 1 if scenario == "introspection" else n)
    if scenario == "introspection":
        body = f"token={tokens[0]}&token_type_hint=access_token".encode()
        return [_environ("POST", "/introspect", body, _basic(rs)) for _ in range(n)]
    return [
        _environ(
            "POST",
            "/revoke",
            f"token={t}&token_type_hint=access_token".encode(),
            _basic(cc),
        )
        for t in tokens
    ]


def measure(app, scenario: str, n: int, profile: bool) -> float:
    """Microseconds of CPU per request of ``scenario`` (after a warm-up)."""
    for environ in requests_for(app, scenario, 50):
        status, body = _call(app, environ)
        if not status.startswith("200"):
            raise SystemExit(f"{scenario}: {status} {body[:300]!r}")
    environs = requests_for(app, scenario, n)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    # Five slices, the median one counts: another process's burst on this
    # shared machine lands in one slice, not in the figure.
    slices = []
    size = max(1, n // 5)
    for start in range(0, n, size):
        began = time.process_time()
        for environ in environs[start : start + size]:
            status, _ = _call(app, environ)
        slices.append(
            (time.process_time() - began) / len(environs[start : start + size])
        )
    if profiler:
        profiler.disable()
    if not status.startswith("200"):
        raise SystemExit(f"{scenario}: {status}")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
    return sorted(slices)[len(slices) // 2] * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("-s", "--scenarios", default=",".join(SCENARIOS))
    p.add_argument("-n", type=int, default=2000, help="requests per scenario")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--env", action="append", default=[], metavar="LATCHKEY_X=VALUE")
    args = p.parse_args(argv)

    from bench import sidebyside

    database = Database(args.db)
    try:
        env = latchkey_env(database.url, args.redis or None)
        env.update(dict(item.split("=", 1) for item in args.env))
        sidebyside.RUN.mkdir(exist_ok=True)
        sidebyside.ENV_FILE.write_text(json.dumps(env))
        sidebyside.ENV_FILE.chmod(0o600)
        seed(env)
        from app import create_app

        app = create_app(env)
        for scenario in args.scenarios.split(","):
            cpu = measure(app, scenario, args.n, args.profile)
            print(f"{scenario:20s} {cpu:8.0f} µs CPU")
    finally:
        database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
