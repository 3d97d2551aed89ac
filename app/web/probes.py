"""Liveness and readiness probes, for a load balancer or Kubernetes.

``/healthz`` says the process is alive and serving: no I/O, so a database
outage never gets every process restarted. ``/readyz`` says whether this
process can do its work now: the database answers, Redis answers (when it
is configured), and signing keys are loaded; otherwise 503, and the load
balancer sends traffic elsewhere until it recovers.
"""

import logging

from flask import Flask, current_app, jsonify
from sqlalchemy import text

from app.extensions import db, limiter

log = logging.getLogger(__name__)


def _database() -> bool:
    db.session.execute(text("SELECT 1"))
    return True


def _redis() -> bool:
    return bool(limiter.storage.check())


def _keys() -> bool:
    return current_app.extensions["latchkey"].keys.ready()


def readiness() -> dict[str, str]:
    """name -> "ok" | "failing" | "skipped" for each dependency."""
    checks: dict[str, str] = {}
    plan = [("database", _database), ("redis", _redis), ("keys", _keys)]
    for name, check in plan:
        if name == "redis" and not current_app.config["LATCHKEY"].redis_url:
            checks[name] = "skipped"  # limits count in this process by design
            continue
        if name == "keys" and checks["database"] != "ok":
            checks[name] = "failing"  # keys live in the database
            continue
        try:
            checks[name] = "ok" if check() else "failing"
        except Exception as exc:  # any failure means not ready
            log.warning("readiness: %s failing: %s", name, type(exc).__name__)
            db.session.rollback()
            checks[name] = "failing"
    return checks


def register_probes(app: Flask) -> None:
    @app.route("/healthz")
    def healthz():
        response = jsonify(status="ok")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.route("/readyz")
    def readyz():
        checks = readiness()
        ready = all(v in ("ok", "skipped") for v in checks.values())
        response = jsonify(status="ready" if ready else "not ready", checks=checks)
        response.status_code = 200 if ready else 503
        response.headers["Cache-Control"] = "no-store"
        return response
