"""Envelope <-> AMQP message. Bodies are the envelope as JSON (written and read by pydantic-core)."""

from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
from aiormq import spec

from contracts.envelope import Envelope

_SERIALIZER = Envelope.__pydantic_serializer__


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event ready for the log: routing key, JSON body, AMQP properties."""

    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    event_type: str


def envelope_body(envelope: Envelope) -> bytes:
    # pydantic-core writes the JSON directly: the same text as model_dump + orjson, one pass.
    return _SERIALIZER.to_json(envelope)


def outgoing(envelope: Envelope) -> Outgoing:
    """Log entries carry only what readers or an operator inspecting the stream use: the
    body, its id and type. Every property costs a conversion in the broker per entry."""
    properties = spec.Basic.Properties(
        message_id=envelope.id, message_type=envelope.type, content_type="application/json", delivery_mode=2,
    )
    return Outgoing(envelope.routing_key, envelope_body(envelope), properties, envelope.type)


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
    """Raises ``ValueError`` (orjson or pydantic) when the body is not an envelope."""
    return Envelope.model_validate_json(body)
