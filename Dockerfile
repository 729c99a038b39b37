# shardline's container image. No Docker engine runs where this repository is tested:
# this file is linted with hadolint (make test) and read carefully, never built there.
#
#   docker build -t shardline .                               # the worker alone
#   docker build -t shardline:postgres --build-arg EXTRAS=postgres .
#   docker build -t shardline:local --build-arg EXTRAS=local,postgres .   # + shardline local
#
# The entrypoint is `shardline`: `docker run shardline run --config /etc/shardline/pipeline.toml
# --metrics-port 9100 --metrics-host 0.0.0.0`. The health check asks /health/live on
# port 9100, so serve metrics there (or override HEALTHCHECK for other commands).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with shardline and only the extras asked for ---------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships wheels for linux x86_64 and arm64: no compiler in either stage.
RUN python -m venv /opt/shardline \
 && /opt/shardline/bin/pip install --no-cache-dir ".${EXTRAS:+[${EXTRAS}]}" \
 && /opt/shardline/bin/shardline --help >/dev/null

# --- runtime: the virtualenv on a clean slim base, as an unprivileged user -----------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shardline" \
      org.opencontainers.image.description="A KCL-grade Amazon DynamoDB Streams consumer" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 shardline \
 && useradd --system --uid 10001 --gid shardline --home-dir /home/shardline --create-home \
      --shell /usr/sbin/nologin shardline
COPY --from=build /opt/shardline /opt/shardline
ENV PATH=/opt/shardline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/shardline
USER 10001:10001
EXPOSE 9100
# shardline finishes the in-flight batches, checkpoints and releases its leases on SIGTERM
# (within --shutdown-grace, 5 s by default); give it longer than that to stop
# (docker stop -t, ECS stopTimeout, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/health/live', timeout=4)"]
ENTRYPOINT ["shardline"]
CMD ["--help"]
