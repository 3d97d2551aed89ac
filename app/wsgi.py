"""WSGI entry point: ``app.wsgi:app``, which deploy/serve.py has granian serve."""

import gc

from app import create_app

app = create_app()

# The ~150,000 objects the app is built from (modules, SQLAlchemy's and
# Flask's tables) live as long as the process. Left in the collector's
# oldest generation, every full collection walks them all: 80 ms on the
# bench machine, a stall that every request queued behind it waits out
# (the token endpoints' p99 at 2 connections). Frozen, they are never
# walked again; objects made later are collected as before.
gc.collect()
gc.freeze()
