# The lms-sync image: the code and its locked environment at /opt/lms-sync, run as a non-root user
# with a read-only root filesystem (the chart mounts /tmp, the config, the HMAC key and the data).
# Used by the flow-run Jobs, the worker and the bootstrap hook alike.
#   docker build -t <registry>/lms-sync:<version> .
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /opt/lms-sync
# Dependencies first (cached while only the code changes); the certifi override lives in uv.lock.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY flows ./flows
COPY connectors ./connectors
COPY transforms ./transforms
COPY emulators ./emulators
COPY prefect.yaml ./
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN groupadd --gid 10001 lms && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin lms
COPY --from=build /opt/lms-sync /opt/lms-sync
WORKDIR /opt/lms-sync
ENV PATH=/opt/lms-sync/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_HOME=/tmp/prefect
USER 10001:10001
# Workers and hooks pass their own command; a flow-run Job runs `prefect flow-run execute`.
CMD ["lms-sync", "--help"]
