"""gunicorn hooks for Latchkey (read from the working directory).

Only what metrics need: with PROMETHEUS_MULTIPROC_DIR set, each worker
writes its counters there (app/metrics.py); the directory starts empty and
an exited worker's live gauges are dropped.
"""

import os
import shutil


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        # Counters from a previous run of the server must not be added in.
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
