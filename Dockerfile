# Touchpoint image: `docker build -t touchpoint .`, then `docker run touchpoint worker`
# (or migrate, generate). Configuration is environment only: TOUCHPOINT_* (see
# touchpoint/settings.py). A worker serves /metrics, /healthz and /readyz on TOUCHPOINT_METRICS_PORT (9108).
# Plain Dockerfile syntax: builds with BuildKit and with the legacy builder.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: wheels for Touchpoint and every dependency, installed into a virtualenv ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change keeps this layer cached.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip wheel --wheel-dir /wheels -r /tmp/requirements.txt
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/touchpoint \
 && /opt/touchpoint/bin/pip install --no-index --find-links=/wheels touchpoint

# --- runtime: the virtualenv only (no compilers, no sources, no wheels), non-root -----------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/touchpoint/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TOUCHPOINT_METRICS_PORT=9108 \
    TOUCHPOINT_DATA_DIR=/var/lib/touchpoint
RUN groupadd --system --gid 10001 touchpoint \
 && useradd --system --uid 10001 --gid touchpoint --home-dir /var/lib/touchpoint --shell /usr/sbin/nologin touchpoint \
 && install -d -o touchpoint -g touchpoint /var/lib/touchpoint
COPY --from=build /opt/touchpoint /opt/touchpoint
WORKDIR /var/lib/touchpoint
USER 10001:10001
EXPOSE 9108
# Healthy = the worker's liveness endpoint answers (/healthz on the metrics port; /readyz says
# whether it owns partitions and its ClickHouse writes succeed). Only `worker` serves it; compose
# turns the check off for the one-shot `migrate`, `schemas register` and `generate` commands.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TOUCHPOINT_METRICS_PORT', '9108'), timeout=4)"
ENTRYPOINT ["touchpoint"]
CMD ["worker"]
