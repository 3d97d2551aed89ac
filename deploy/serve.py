"""Start Latchkey's web processes in production: granian's WSGI server.

    python deploy/serve.py          # what the Docker image runs

Granian, not gunicorn, by measurement: on the side-by-side harness it
served the same code with 10-90% more requests per second of server CPU
than gunicorn's gthread worker and 1.5 to 2 times the throughput at 16
connections (bench/README.md, "The serving stack"). Its HTTP/1.1 parsing
and keep-alive run in Rust; the app runs in its worker processes' blocking
threads as with any WSGI server.

Every setting is a ``GRANIAN_*`` environment variable that granian reads
itself (``granian --help`` lists them); this script only sets Latchkey's
defaults for those left unset, empties the Prometheus multiprocess
directory (a previous run's counters must not be added in), then replaces
itself with granian. See docs/PRODUCTION.md for how workers, threads and
replicas add up to database connections.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Latchkey's defaults; an operator's GRANIAN_* variable wins.
DEFAULTS = {
    "GRANIAN_INTERFACE": "wsgi",
    "GRANIAN_HOST": "0.0.0.0",  # noqa: S104 - a container's port, behind its Service
    "GRANIAN_PORT": "8000",
    # Sign-in hashes passwords with argon2 (CPU-bound, ~50 ms): processes,
    # not threads, use the cores. One container per core or two is the
    # Kubernetes shape (scale out with replicas), so 2 per core.
    "GRANIAN_WORKERS": str(2 * (os.cpu_count() or 1)),
    # A few threads hide the database round trips; each can hold one
    # database connection, so workers x threads bounds a pod's pool use.
    "GRANIAN_BLOCKING_THREADS": "4",
    # HTTP/1.1 behind the ingress; no HTTP/2 cleartext upgrade to think of.
    "GRANIAN_HTTP": "1",
    # A worker that dies is replaced; one that ignores a stop is killed
    # after this (< the pod's terminationGracePeriodSeconds).
    "GRANIAN_RESPAWN_FAILED_WORKERS": "true",
    "GRANIAN_WORKERS_KILL_TIMEOUT": "25",
    # Each worker is replaced after a day, and when its memory passes this
    # many MiB: a bound on any slow leak (gunicorn's max_requests did that).
    "GRANIAN_WORKERS_LIFETIME": "24h",
    "GRANIAN_WORKERS_MAX_RSS": "512",
    # No access log: a request line's path and query can carry
    # authorization codes and emailed links (RFC 6749 §4.1.2). Latchkey
    # writes its own, which names the route pattern only (app/web/logs.py).
    "GRANIAN_LOG_ACCESS_ENABLED": "false",
}
APP = "app.wsgi:app"


def environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with Latchkey's defaults for the GRANIAN_* left unset."""
    return {**DEFAULTS, **environ}


def empty_metrics_dir(environ: dict[str, str]) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics
    there; counters of an earlier run of the server must not be added in."""
    path = environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def main() -> None:
    env = environment(dict(os.environ))
    empty_metrics_dir(env)
    granian = Path(sys.executable).with_name("granian")
    command = str(granian) if granian.exists() else "granian"
    os.execvpe(command, [command, *sys.argv[1:], APP], env)  # noqa: S606 - no shell wanted


if __name__ == "__main__":
    main()
