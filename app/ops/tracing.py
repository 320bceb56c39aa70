"""OpenTelemetry tracing, off unless the standard `OTEL_*` variables ask for it.

`OTEL_TRACES_EXPORTER=console` prints spans; `otlp` (or any `OTEL_EXPORTER_OTLP_*ENDPOINT`)
sends them over OTLP/HTTP (install `liftoff[otel]`). Spans: each GraphQL operation, each
database statement (asyncpg instrumentation), each relay publish. The trace context of the
request that caused an event travels with it through the outbox, so the worker's publish
span joins the request's trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_tracer: Any = None


class _NoSpan:
    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass


NO_SPAN = _NoSpan()
"""What `span` yields while tracing is off."""
_NO_SPAN_CONTEXT = contextlib.nullcontext(NO_SPAN)
"""What `span` returns while tracing is off: reusable, nothing built per call."""


def wanted() -> bool:
    """True when the environment asks for traces."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(exporter or endpoint)


def setup(service: str) -> bool:
    """Start tracing for this process when wanted; True when it is on."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTLP tracing asked for but not installed: pip install 'liftoff[otel]'")
            return False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    except ImportError:
        log.info("asyncpg statements are not traced (opentelemetry-instrumentation-asyncpg)")
    _tracer = trace.get_tracer("liftoff")
    log.info("tracing on (%s exporter)", kind)
    return True


def shutdown() -> None:
    """Flush pending spans."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    with contextlib.suppress(Exception):
        provider.shutdown()  # type: ignore[attr-defined]


def span(name: str, *, parent: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span named `name` (a no-op when tracing is off); `parent` is a W3C traceparent."""
    if _tracer is None:
        return _NO_SPAN_CONTEXT
    return _span(name, parent)


@contextlib.contextmanager
def _span(name: str, parent: str | None) -> Iterator[Any]:
    context = None
    if parent:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract({"traceparent": parent})
    with _tracer.start_as_current_span(name, context=context) as current:
        yield current


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry through the outbox."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")
