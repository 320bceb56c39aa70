# Liftoff API / worker image.
#
#   docker build -t liftoff .
#   docker run --rm -p 8000:8000 -v liftoff-data:/data liftoff      # embedded default, no configuration
#   docker run --rm -p 8000:8000 -v liftoff-data:/data liftoff serve --host 0.0.0.0 --demo
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... -e LIFTOFF_SECRET_KEY=... \
#       liftoff serve --host 0.0.0.0 --workers 2
#   docker run --rm liftoff worker          # same image, other commands: migrate, token, demo, ...
#
# Without DATABASE_URL the embedded PostgreSQL starts under /data (the LIFTOFF_DATA_DIR volume),
# as the unprivileged user (PostgreSQL refuses to run as root). Without REDIS_URL events fan out
# in memory inside one process, so the default command runs one api process; with REDIS_URL,
# add --workers N.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: wheel + virtualenv
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# pyproject.toml names README.md as the long description: the build needs it.
COPY pyproject.toml README.md requirements.lock ./
COPY app ./app
COPY migrations ./migrations

# Dependencies come from the lock file (exact versions, hashes checked); Liftoff itself on top.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock \
 && /opt/venv/bin/pip install --no-deps /wheels/liftoff-*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/liftoff --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001
RUN groupadd --system --gid "${GID}" liftoff \
 && useradd --system --uid "${UID}" --gid liftoff --home-dir /home/liftoff --create-home \
        --shell /usr/sbin/nologin liftoff \
 && mkdir -p /data \
 && chown liftoff:liftoff /data

# Same path as in the build stage: the venv's scripts carry absolute shebangs.
COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIFTOFF_DATA_DIR=/data \
    LIFTOFF_PORT=8000

WORKDIR /home/liftoff
USER liftoff:liftoff
VOLUME ["/data"]
EXPOSE 8000

# No curl in slim images: ask /healthz with the interpreter we already have.
# A 503 (database unreachable) raises HTTPError, so the check fails.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LIFTOFF_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["liftoff"]
CMD ["serve", "--host", "0.0.0.0"]
