# discomfy: the bot in a container. Build: docker build -t discomfy .   Run: see docker-compose.yml and docs/deploy.md.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A system user of its own: the bot never needs root.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin discomfy

WORKDIR /app
# Dependencies first (a layer that changes only with setup.cfg), then the code.
COPY setup.cfg pyproject.toml README.md ./
COPY discomfy ./discomfy
RUN pip install . && rm -rf build *.egg-info
COPY run.py ./
COPY workflows ./workflows
COPY deploy/healthcheck.py ./healthcheck.py
COPY scripts/backup_data.py ./backup_data.py

# The data directory (SQLite database and results): a volume, owned by the bot, private to it.
RUN mkdir -p /data && chown discomfy:discomfy /data && chmod 0700 /data
VOLUME ["/data"]

ENV DISCOMFY_DATA_DIR=/data \
    DISCOMFY_WORKFLOWS_DIR=/app/workflows \
    DISCOMFY_HTTP_HOST=127.0.0.1 \
    DISCOMFY_HTTP_PORT=9464
# /healthz and /metrics, unauthenticated: on the container's loopback (the HEALTHCHECK runs inside). For a
# Prometheus elsewhere set DISCOMFY_HTTP_HOST=0.0.0.0 (docker-compose.yml shows how) and keep the port private.
EXPOSE 9464

USER discomfy

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "/app/healthcheck.py"]

# The same command the tests start (tests/test_run_process.py); arguments go after it: docker run … discomfy --check
ENTRYPOINT ["python", "run.py"]
