# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
# Install the dependencies only; the source is copied as-is below so that
# templates/ and migrations/ sit beside app/ as in the repository.
RUN python -m venv /opt/latchkey \
    && /opt/latchkey/bin/pip install --no-cache-dir . \
    && /opt/latchkey/bin/pip uninstall --yes latchkey

FROM python:3.11-slim
RUN groupadd --system --gid 10001 latchkey \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv latchkey
WORKDIR /srv
COPY --from=build /opt/latchkey /opt/latchkey
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY deploy/serve.py ./deploy/serve.py
# The root filesystem can be read-only (deploy/kubernetes): nothing is
# written but Python's bytecode cache (off) and the metrics directory under
# /tmp, which Kubernetes mounts as an emptyDir.
ENV PATH=/opt/latchkey/bin:$PATH \
    FLASK_APP=app \
    LATCHKEY_ENV=production \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/latchkey-metrics
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Deploy steps run from the same image before the web processes start
# (docs/PRODUCTION.md): flask db upgrade, then flask keys.
CMD ["python", "deploy/serve.py"]
