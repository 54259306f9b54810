"""Optional OpenTelemetry tracing: one trace follows a client's action across the services.

Off unless ``RELAYDESK_OTLP_ENDPOINT`` is set, and then free: nothing of OpenTelemetry is
imported, :func:`span` returns a shared do-nothing context manager and :func:`inject` adds
nothing, so a log entry or a command carries no extra bytes. On (the ``tracing`` extra:
``pip install 'relaydesk[tracing]'``), spans go to the OTLP/HTTP endpoint in batches.

The trace crosses the bus in W3C ``traceparent`` form: in the headers of commands and
queries (AMQP 0-9-1), and in the application properties of log entries (AMQP 1.0), read
back as ``LoggedEvent.traceparent``. So the gateway's span for a websocket op or an HTTP
request is the parent of the agent service's span deciding the command it sent, and of the
history service's span archiving the event it appended. Spans carry the envelope's
correlation id as ``relaydesk.correlation_id``: the trace and the log lines of one action
are found by the same id (docs/observability.md).
"""

from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

TRACEPARENT = "traceparent"
_OFF: AbstractContextManager[Any] = nullcontext()


@dataclass(frozen=True)
class _Tracing:
    tracer: Any  # opentelemetry.trace.Tracer
    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    propagator: Any  # TraceContextTextMapPropagator
    kinds: Mapping[str, Any]  # "server", "client", "producer", "consumer" -> SpanKind


_tracing: _Tracing | None = None


def configure_tracing(endpoint: str | None, service: str) -> None:
    """Export spans to ``endpoint`` (OTLP/HTTP, e.g. ``http://collector:4318/v1/traces``);
    ``None``: tracing stays off and nothing is imported."""
    if not endpoint:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # the setting without the extra: say what to install
        raise RuntimeError(
            "RELAYDESK_OTLP_ENDPOINT is set but the tracing extra is not installed: "
            "pip install 'relaydesk[tracing]'"
        ) from exc
    enable_tracing(service, OTLPSpanExporter(endpoint=endpoint))


def enable_tracing(service: str, exporter: Any, *, batch: bool = True) -> None:
    """Trace into ``exporter`` (a SpanExporter); tests pass an in-memory one with batch=False."""
    global _tracing
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": f"relaydesk-{service}"}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    # The provider is ours, not the process-wide global: one process may hold several
    # relaydesk services (relaydesk up's tests), and the global can be set only once.
    _tracing = _Tracing(
        tracer=provider.get_tracer("relaydesk"),
        provider=provider,
        propagator=TraceContextTextMapPropagator(),
        kinds={kind.name.lower(): kind for kind in SpanKind},
    )


def disable_tracing() -> None:
    """Flush what was recorded and stop tracing."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        tracing.provider.shutdown()


def tracing_enabled() -> bool:
    return _tracing is not None


def span(
    name: str,
    *,
    parent: Mapping[str, Any] | None = None,
    kind: str = "internal",
    attributes: Mapping[str, str | int] | None = None,
) -> AbstractContextManager[Any]:
    """A span around the ``with`` block, child of the current one, or of the ``traceparent``
    in ``parent`` (a message's headers) when given; a no-op while tracing is off."""
    tracing = _tracing
    if tracing is None:
        return _OFF
    context = tracing.propagator.extract(_text(parent)) if parent is not None else None
    started: AbstractContextManager[Any] = tracing.tracer.start_as_current_span(
        name, context=context, kind=tracing.kinds[kind], attributes=attributes
    )
    return started


def _text(headers: Mapping[str, Any]) -> dict[str, str]:
    """The trace headers of a message as text (AMQP header tables may hand back bytes)."""
    found = ((key, headers.get(key)) for key in (TRACEPARENT, "tracestate"))
    return {
        key: value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        for key, value in found
        if value is not None
    }


def inject(carrier: MutableMapping[str, Any]) -> None:
    """Put the current span's ``traceparent`` in ``carrier`` (message headers); off: nothing."""
    if _tracing is not None:
        _tracing.propagator.inject(carrier)


def current_traceparent() -> str | None:
    """The current span's ``traceparent``, for a log entry; None when off or outside a span."""
    if _tracing is None:
        return None
    carrier: dict[str, str] = {}
    _tracing.propagator.inject(carrier)
    return carrier.get(TRACEPARENT)
