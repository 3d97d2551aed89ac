"""Benchmarks against a live Latchkey server; see bench/README.md.

Not part of the test suite: run ``python bench/run.py --db sqlite``.
"""
