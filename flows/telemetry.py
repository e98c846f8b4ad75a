"""Tracing and structured logs, set up once per process.

An SDK tracer provider is always installed, even with no exporter, because the trace and span ids
stored on every staged and served row must be real ids, not the API's all-zero no-op ones. Where
spans go is chosen by the standard OTEL_* variables: an OTLP endpoint sends them to a collector,
``OTEL_TRACES_EXPORTER=console`` prints them, and nothing is exported by default.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

LOGGER_NAME = "lms_sync"
_CONTEXT_FIELDS = ("run_id", "institution", "course_id", "domain", "vendor")


def tracer_provider() -> TracerProvider:
    """The process's SDK provider, installing it on first use."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": "lms-sync"}))
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()  # type: ignore[return-value]


def add_exporter(exporter: SpanExporter) -> None:
    """Send spans to one more exporter (tests use an in-memory one)."""
    tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))


def flush() -> None:
    """Export what is buffered: Kubernetes job pods end as soon as the flow returns."""
    tracer_provider().force_flush()


def _exporter_from_env() -> SpanExporter | None:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if chosen == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if chosen == "otlp" or (otlp and chosen != "none"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(
                "OTEL exporter requested but opentelemetry-exporter-otlp-proto-http is not "
                "installed: install lms-sync with the 'otlp' extra"
            ) from exc
        return OTLPSpanExporter()
    return None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, carrying run, course and trace ids for correlation."""

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(*, path: str | None = None, stream: Any = sys.stderr) -> logging.Logger:
    """JSON logs for the ``lms_sync`` logger, to ``stream`` (None: none) and optionally a file."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)] if stream else []
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(JsonLogFormatter())
        logger.addHandler(handler)
    return logger


def ensure_logging() -> None:
    """JSON logs to stderr (and ``LMS_SYNC_LOG_FILE`` if set) unless a caller configured them."""
    if not logging.getLogger(LOGGER_NAME).handlers:
        configure_logging(path=os.environ.get("LMS_SYNC_LOG_FILE"))


class _ContextAdapter(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def get_logger(**context: Any) -> logging.LoggerAdapter:
    """A logger that stamps ``context`` (run_id, course_id, …) on every line."""
    return _ContextAdapter(logging.getLogger(LOGGER_NAME), context)
