"""Envelope <-> AMQP message. Bodies are the envelope as JSON (written, read by pydantic-core)."""

from typing import Any

import aio_pika

from contracts.envelope import Envelope

_SERIALIZER = Envelope.__pydantic_serializer__


def envelope_body(envelope: Envelope) -> bytes:
    # pydantic-core writes the JSON directly: the same text as model_dump + orjson, one pass.
    return _SERIALIZER.to_json(envelope)


def encode_envelope(envelope: Envelope, **extra: Any) -> aio_pika.Message:
    return aio_pika.Message(
        body=envelope_body(envelope),
        message_id=envelope.id,
        type=envelope.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=envelope.correlation_id,
        headers={"tenant": envelope.tenant, "v": envelope.v},
        **extra,
    )


def decode_envelope(body: bytes) -> Envelope:
    """Raises ``ValueError`` (a pydantic ValidationError) when the body is not an envelope."""
    return Envelope.model_validate_json(body)
