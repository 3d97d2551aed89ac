"""WSGI entry point: ``app.wsgi:app``, which deploy/serve.py has granian serve."""

from app import create_app

app = create_app()
