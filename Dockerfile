# mockllm as a standalone server: `docker build -t mockllm .` then
# `docker run --rm -p 8000:8000 -v ./scenarios:/scenarios mockllm`.
# For load tests on several cores: `docker run -e MOCKLLM_WORKERS=4 ...` runs 4 processes on port 8000 (sequences,
# the journal and runtime scenarios are then per worker, and the admin API refuses them).
# PYTHON_IMAGE lets a build substitute its base image (a mirror, a pinned digest, another Python).
ARG PYTHON_IMAGE=python:3.12-slim

# Stage 1: build the wheel from the source tree.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mockllm ./mockllm
RUN python -m pip wheel --no-cache-dir --no-deps --disable-pip-version-check --wheel-dir /dist .

# Stage 2: install the wheel (and its few dependencies) into a clean image; no source, no build tools.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    MOCKLLM_IN_CONTAINER=1 \
    PYTHONUNBUFFERED=1 \
    MOCKLLM_HOST=0.0.0.0 \
    MOCKLLM_PORT=8000 \
    MOCKLLM_WORKERS=1
COPY --from=build /dist/ /tmp/dist/
# The `fast` extra: uvloop and httptools, which the server runs on when they are installed.
RUN wheel="$(ls /tmp/dist/*.whl)" \
    && python -m pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore "${wheel}[fast]" \
    && rm -rf /tmp/dist \
    && useradd --no-log-init --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mockllm
# The repository's example scenarios; mount your own folder over /scenarios.
COPY scenarios/ /scenarios/
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_mockllm/health' % os.environ.get('MOCKLLM_PORT', '8000'), timeout=2)"]
# Exec form: mockllm is PID 1 and gets SIGTERM itself (it lets streams finish for up to --grace, then exits 0); with
# MOCKLLM_WORKERS above 1 it supervises the workers, passes the signal on to them, and reaps them.
ENTRYPOINT ["mockllm", "serve"]
CMD ["/scenarios"]
