"""Envelope <-> AMQP message. Bodies are the envelope as JSON (orjson)."""

from typing import Any

import aio_pika
import orjson

from contracts.envelope import Envelope


def encode_envelope(envelope: Envelope, **extra: Any) -> aio_pika.Message:
    return aio_pika.Message(
        body=orjson.dumps(envelope.model_dump(mode="json")),
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
    return Envelope.model_validate(orjson.loads(body))
