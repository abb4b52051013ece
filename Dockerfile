# sensor-simulator: one simulated industrial sensor node per container.
#
#   docker build -t sensor-simulator .
#   docker run -v "$(pwd)/data:/app/data" -e SENSOR_ID=CUSTOM001 sensor-simulator
#
# Without a registry, docker/build-image.sh builds this same file from a local
# Debian base image and a wheelhouse (BASE_IMAGE and WHEELHOUSE below).

# Any Debian-based image whose python3 is 3.11 or newer and has the venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
LABEL sensorfleet.stage=build

# A directory in the build context; when it holds wheels, nothing is downloaded.
ARG WHEELHOUSE=docker/wheelhouse
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY ${WHEELHOUSE}/ /wheels/
COPY pyproject.toml uv.lock docker/requirements.py ./

# Extras installed beside the dependencies: `sync` holds the PostgreSQL, Kafka and MQTT
# clients, so every image can run `sensorfleet sync` to any sink; `faces` the OPC UA and
# Modbus TCP servers (off unless OPCUA_ENABLED / MODBUS_ENABLED).
ARG EXTRAS=sync,faces
# Dependencies first, in their own layer, so that a code change does not reinstall them:
# the exact versions of uv.lock, each file checked against the lock's hashes.
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    python3 -m venv /opt/venv; \
    python3 requirements.py uv.lock "$EXTRAS" > /tmp/requirements.txt; \
    /opt/venv/bin/pip install --quiet --require-hashes --requirement /tmp/requirements.txt

COPY README.md ./
COPY src/ ./src/
# The image installs nothing at run time, so the installer goes (about 25 MB). The
# image runs Python with -OO (PYTHONOPTIMIZE below): its bytecode is compiled now (with
# PYTHONDONTWRITEBYTECODE a missing .opt-2.pyc would be compiled at every start) and
# replaces pip's plain .pyc files, which it would never read (about 36 MB).
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    /opt/venv/bin/pip install --quiet --no-deps ".${EXTRAS:+[$EXTRAS]}" ; \
    /opt/venv/bin/pip check; \
    /opt/venv/bin/sensorfleet --help >/dev/null; \
    /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools; \
    /opt/venv/bin/python -OO -m compileall -q /opt/venv/lib; \
    find /opt/venv -name '*.pyc' ! -name '*.opt-2.pyc' -delete


FROM ${BASE_IMAGE}

LABEL sensorfleet.stage=runtime \
      org.opencontainers.image.title="sensor-simulator" \
      org.opencontainers.image.description="Simulated industrial sensor node writing readings to SQLite" \
      org.opencontainers.image.licenses="MIT"

# The node runs as this user unless /app/data belongs to another non-root user
# (see docker/entrypoint.sh); a fixed uid keeps file ownership stable across images.
RUN groupadd --system --gid 10001 sensor \
    && useradd --system --uid 10001 --gid sensor --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin sensor

COPY --from=build /opt/venv /opt/venv
# PYTHONOPTIMIZE=2 (-OO): docstrings and asserts are not loaded, about 3 MB less per
# node (docs/footprint.md). OPENBLAS_NUM_THREADS=1: numpy's BLAS starts no thread per
# host core for any Python started here (`sensorfleet` sets it too).
ENV PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONOPTIMIZE=2 \
    OPENBLAS_NUM_THREADS=1 \
    LOG_FORMAT=json \
    MONITORING_HOST=0.0.0.0 \
    MONITORING_PORT=8080 \
    OPCUA_HOST=0.0.0.0 \
    OPCUA_PORT=4840 \
    MODBUS_HOST=0.0.0.0 \
    MODBUS_PORT=5020

# The interpreter's own modules compiled for -OO, as /opt/venv's were in the build stage:
# with PYTHONDONTWRITEBYTECODE a missing .opt-2.pyc would be compiled at every start.
RUN python -OO -m compileall -q -x '/tests?/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

WORKDIR /app
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY docker/healthcheck.sh /usr/local/bin/sensorfleet-healthcheck
COPY docker/healthcheck.py /usr/local/lib/sensorfleet-healthcheck.py
COPY docker/query.py /usr/local/bin/sensorfleet-query
COPY config.yaml node_identity.json main.py /app/
# /central: where a collector's file sink goes when a volume is mounted there.
RUN mkdir -p /app/data /central && chown sensor:sensor /app/data /central

VOLUME ["/app/data"]
# HTTP monitoring; OPC UA and Modbus TCP when OPCUA_ENABLED / MODBUS_ENABLED=true.
EXPOSE 8080 4840 5020

# The node flushes every buffered row and exits 0 on SIGTERM; `docker stop` sends it.
STOPSIGNAL SIGTERM
# A node is asked by bash alone (no interpreter start: it runs in every container every
# 15 s); a collector's metrics are read by sensorfleet-healthcheck.py.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/sensorfleet-healthcheck"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["sensorfleet", "run"]
