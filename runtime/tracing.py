"""OpenTelemetry tracing, with the W3C trace context carried in Kafka headers and outbox rows."""
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_provider: TracerProvider | None = None


def configure_tracing(service: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None) -> None:
    """Spans are always made (ids reach logs and outbox rows); they leave the process only if configured."""
    global _provider
    if _provider is not None:
        return
    _provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
    if exporter is not None:
        _provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(_provider)


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def tracer(name: str = "hotline111"):
    return trace.get_tracer(name)


def current_carrier() -> dict[str, str]:
    """The current trace context as headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier: dict[str, str] | None) -> Context:
    return propagate.extract(carrier or {})


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def trace_id_of(carrier: dict[str, str] | None) -> str | None:
    ctx = trace.get_current_span(context_from(carrier)).get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
