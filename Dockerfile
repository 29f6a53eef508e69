# lyftr container: dependencies built in a builder stage, a small non-root runtime stage.
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt /tmp/requirements.txt
# pip and setuptools are build tools: the runtime stage does without them (about 22 MB).
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite:////data/app.db \
    PROMETHEUS_MULTIPROC_DIR=/tmp/lyftr-metrics
RUN useradd --system --uid 10001 --no-create-home --home-dir /app lyftr \
    && mkdir -p /data \
    && chown lyftr:lyftr /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./
COPY scripts/docker-entrypoint.sh /usr/local/bin/lyftr-entrypoint
COPY lyftr/ lyftr/
USER lyftr
EXPOSE 8000
VOLUME ["/data"]
# The slim image has no curl: probe readiness with Python (exit 1 on any non-2xx or no answer).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2)"]
# Migrations first (flask db upgrade), then the command: Gunicorn unless another is given.
ENTRYPOINT ["lyftr-entrypoint"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
