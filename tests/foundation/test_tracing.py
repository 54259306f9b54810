"""Tracing is free while off, and a log entry's trace context survives the stream encoding.

The trace across gateway and services is tested on a running system in
tests/gateway/test_observability.py.
"""

import subprocess
import sys

from rstream.amqp import amqp_decoder

from relaydesk.bus.amqp10 import encode_message, message_parts
from relaydesk.tracing import current_traceparent, inject, span

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_off_imports_nothing_of_opentelemetry_and_adds_nothing() -> None:
    headers: dict[str, str] = {}
    inject(headers)
    assert headers == {} and current_traceparent() is None
    assert span("anything") is span("other")  # one shared do-nothing context
    probe = (
        "import sys; import relaydesk.runtime, relaydesk.bus, gateway.app, history_service.service;"
        "from relaydesk.tracing import configure_tracing; configure_tracing(None, 'gateway');"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_a_log_entry_carries_its_traceparent_only_when_given() -> None:
    body = b'{"id":"e1"}' * 40
    traced = encode_message(body, "e1", TRACEPARENT)
    decoded = amqp_decoder(traced)  # a well-formed AMQP 1.0 message for any other reader
    assert decoded.application_properties == {b"traceparent": TRACEPARENT.encode()}
    assert decoded.properties.message_id == b"e1"
    assert message_parts(traced) == (body, TRACEPARENT)
    plain = encode_message(body, "e1")
    assert message_parts(plain) == (body, None) and len(plain) < len(traced)


def test_other_application_properties_are_not_taken_for_a_trace() -> None:
    body = b"{}"
    # a map8 with a different first key, as a tool publishing over AMQP 0-9-1 would leave
    other = b"\x00\x53\x74\xc1\x0d\x02\xa1\x04user\xa1\x04anna"
    raw = b"\x00\x53\x73\xc0\x03\x01\xa1\x00" + other + b"\x00\x53\x75\xa0\x02" + body
    assert message_parts(raw) == (body, None)
