"""Prometheus metrics at /metrics (prometheus-client).

Every web worker is its own process: set PROMETHEUS_MULTIPROC_DIR to a
directory writable by the workers (deploy/serve.py empties it at start) and
/metrics adds up every worker's counters, whichever
worker answers the scrape. Without it, /metrics shows this process only
(fine for one-process trials).

Series (every label has a small, fixed set of values):
  latchkey_http_requests_total{endpoint,method,status}
  latchkey_http_request_duration_seconds{endpoint}   (histogram)
  latchkey_tokens_issued_total{grant_type}
  latchkey_refresh_reuse_detected_total
  latchkey_security_events_total{tag}
  latchkey_rate_limit_hits_total{endpoint}
  latchkey_ratelimit_fallback_active   (1: Redis away, limits count per process)
  latchkey_outbox_backlog, latchkey_outbox_oldest_unsent_age_seconds (at scrape)
"""

import hmac
import logging
import os
import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A flask command in the same image (flask keys) writes there too;
    # deploy/serve.py empties it when the server starts.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

REQUESTS = Counter(
    "latchkey_http_requests",
    "HTTP requests answered, by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "latchkey_http_request_duration_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TOKENS_ISSUED = Counter(
    "latchkey_tokens_issued", "Token responses issued, by grant type.", ["grant_type"]
)
REFRESH_REUSE = Counter(
    "latchkey_refresh_reuse_detected",
    "Used refresh tokens presented again (RFC 9700 §4.14.2); each revoked a grant.",
)
SECURITY_EVENTS = Counter(
    "latchkey_security_events", "Security events recorded, by tag.", ["tag"]
)
RATE_LIMIT_HITS = Counter(
    "latchkey_rate_limit_hits", "Requests refused by a rate limit.", ["endpoint"]
)
FALLBACK = Gauge(
    "latchkey_ratelimit_fallback_active",
    "1 while Redis is away and rate limits count in this process only.",
    multiprocess_mode="max",
)


# Label values come from small fixed sets: the Flask endpoint name, never
# the raw path; a method outside these, which a client may make up, is
# "OTHER" (each distinct value would be a new series in every worker).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# (endpoint, method, status) -> the request counter's and the latency
# histogram's children: labels() validates and locks on every call.
_children: dict[tuple[str, str, int], tuple] = {}


def _start_timer():
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]
    started = g.get("metrics_started")
    count_request(
        req.endpoint or "unmatched",
        req.method,
        response.status_code,
        None if started is None else time.perf_counter() - started,
    )
    return response


def count_request(
    endpoint: str, method: str, status: int, seconds: float | None
) -> None:
    """Count one answered request: ``endpoint`` is the Flask endpoint name
    (never the path), ``method`` the request's (made-up ones count as
    "OTHER"), ``seconds`` the time to answer it, or None when unknown.
    The after_request hook calls it, and so does what answers below Flask
    (app/oauth/documents.py)."""
    method = method if method in KNOWN_METHODS else "OTHER"
    key = (endpoint, method, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            REQUESTS.labels(endpoint, method, str(status)),
            LATENCY.labels(endpoint),
        )
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)
    if status == 429:
        RATE_LIMIT_HITS.labels(endpoint).inc()


class OutboxCollector:
    """The outbox backlog, read from the database when scraped (one
    grouped query), so it is the same whichever process answers."""

    def __init__(self, app: Flask, outbox_status: Callable[[], dict]):
        self.app = app
        self.outbox_status = outbox_status

    def collect(self):
        from app.extensions import db

        backlog = GaugeMetricFamily(
            "latchkey_outbox_backlog", "Outbox messages not yet sent."
        )
        age = GaugeMetricFamily(
            "latchkey_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unsent outbox message (0 when none).",
        )
        try:
            with self.app.app_context():
                status = self.outbox_status()
                db.session.remove()
        except Exception:  # the database is away: /readyz says so
            log.warning("metrics: outbox status unavailable", exc_info=True)
            return
        backlog.add_metric([], status["pending"] + status["failed"])
        age.add_metric([], status["oldest_unsent_age_seconds"] or 0)
        yield backlog
        yield age


def note_fallback(active: bool) -> None:
    """Record (and log, when it changes) whether rate limits count in this
    process because Redis is away."""
    global _fallback_active
    if active != _fallback_active:
        _fallback_active = active
        FALLBACK.set(1 if active else 0)
        if active:
            log.error("Redis is unreachable: rate limits now count per process")
        else:
            log.warning("Redis is back: rate limits are shared again")


_fallback_active = False  # in this process


def _watch_fallback(response: Response) -> Response:
    from app.extensions import limiter

    # Flask-Limiter keeps this flag; no public accessor exists (4.x).
    note_fallback(bool(getattr(limiter, "_storage_dead", False)))
    return response


def init_metrics(app: Flask, outbox_status: Callable[[], dict]) -> None:
    """Count every request and serve /metrics. ``outbox_status`` (the
    outbox's, passed in so that this low module imports no service) gives
    the backlog at each scrape."""
    app.before_request(_start_timer)
    app.after_request(_count)
    app.after_request(_watch_fallback)

    token = app.config["LATCHKEY"].metrics_token

    @app.route("/metrics")
    def metrics():
        if token and not hmac.compare_digest(
            request.headers.get("Authorization", ""), f"Bearer {token}"
        ):
            return Response("", status=401, headers={"WWW-Authenticate": "Bearer"})
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        body = generate_latest(registry)
        body += generate_latest(_outbox_registry(app, outbox_status))
        return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _outbox_registry(app: Flask, outbox_status) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(OutboxCollector(app, outbox_status))
    return registry
