"""gunicorn settings for Latchkey in production (the Docker image runs
``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``).

Every value can be changed without a new image through the environment
variable named beside it. See docs/PRODUCTION.md for how workers, threads
and replicas add up to database connections.
"""

import multiprocessing
import os
import shutil


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sign-in hashes passwords with argon2 (CPU-bound, ~50 ms): processes, not
# threads, are what use the cores. One container per core or two is the
# Kubernetes shape (scale out with replicas), so the default is 2 per core.
workers = _int("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count())
worker_class = "gthread"
# A few threads hide the database round trips; each thread can hold one
# database connection, so workers x threads bounds a process's pool use.
threads = _int("GUNICORN_THREADS", 4)
# Longer than any request should take (argon2 + a database round trip), and
# shorter than the load balancer's idle timeout so that gunicorn, not the
# balancer, ends a stuck request.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)  # < terminationGracePeriod
keepalive = _int("GUNICORN_KEEPALIVE", 75)  # > the balancer's idle timeout
# A worker is replaced after this many requests (with jitter), bounding any
# slow leak without all workers restarting at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# The heartbeat file must not sit on a read-only root or a slow disk.
# /dev/shm is a memory file system private to the container.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108

# Which peers may set X-Forwarded-Proto/-For for gunicorn itself. Latchkey
# reads the client address through LATCHKEY_TRUSTED_PROXIES (ProxyFix), not
# through this; the ingress controller's pod address changes, so the
# default trusts the pod network's peers and relies on the NetworkPolicy /
# Service to keep everyone else out (docs/PRODUCTION.md, "TLS and proxies").
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "*")

# gunicorn's access log prints the request line, whose path and query can
# carry authorization codes, reset and verification links and tokens
# (RFC 6749 §4.1.2 puts the code in the redirect's query). It stays off:
# request counts and latencies come from /metrics, and a request log is the
# application's to write, since only it knows which parts are secret.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Request lines gunicorn prints on errors (e.g. "Invalid request") are
# bounded, and header fields too large are refused before the app sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Load the app in each worker, not the master: every worker opens its own
# database pool and Redis connection after the fork.
preload_app = False
proc_name = "latchkey"


def on_starting(server):
    """With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics
    there; counters of an earlier run of the server must not be added in."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    """Drop an exited worker's live gauges from the metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
