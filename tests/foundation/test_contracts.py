"""Contracts: envelope round-trip, typed validation errors, upcasting, schemas in docs."""

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from contracts import Actor, Envelope, InvalidPayload, UnknownType, derive_event_id, new_event_id
from contracts.registry import COMMANDS, EVENTS, Registry
from contracts.schemas import DEFAULT_DIR, render
from relaydesk.bus.codec import decode_envelope, encode_envelope


def make_envelope(**overrides: object) -> Envelope:
    fields: dict = {
        "type": "message.sent",
        "v": 2,
        "tenant": "acme",
        "stream": "conv:c1",
        "actor": Actor(kind="customer", id="v1"),
        "data": {
            "conversation_id": "c1",
            "message_id": "m1",
            "body": "hi",
            "author_kind": "customer",
            "author_id": "v1",
        },
        "correlation_id": "corr-1",
    }
    fields.update(overrides)
    return Envelope(**fields)


def test_envelope_survives_the_wire_unchanged() -> None:
    envelope = make_envelope(occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    message = encode_envelope(envelope)
    assert message.message_id == envelope.id
    assert decode_envelope(message.body) == envelope


def test_envelope_is_frozen_and_rejects_unknown_fields() -> None:
    envelope = make_envelope()
    with pytest.raises(ValidationError):
        envelope.tenant = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Envelope.model_validate({**envelope.model_dump(), "sneaky": 1})


@pytest.mark.parametrize("tenant", ["", "a b", "x" * 200, "$gt"])
def test_envelope_rejects_bad_tenant_names(tenant: str) -> None:
    with pytest.raises(ValidationError):
        make_envelope(tenant=tenant)


def test_decode_rejects_garbage_with_value_error() -> None:
    with pytest.raises(ValueError):
        decode_envelope(b"{not json")
    with pytest.raises(ValueError):
        decode_envelope(orjson.dumps({"type": "message.sent"}))


def test_unknown_type_raises_typed_error() -> None:
    with pytest.raises(UnknownType) as err:
        EVENTS.parse("message.exploded", 1, {})
    assert err.value.code == "unknown_type"


def test_newer_version_than_supported_is_unknown() -> None:
    with pytest.raises(UnknownType):
        EVENTS.parse("message.sent", 99, {})


def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(InvalidPayload) as err:
        EVENTS.parse("message.sent", 2, {"conversation_id": "c1"})
    assert err.value.code == "invalid_payload"
    assert any("message_id" in e["loc"] for e in err.value.errors)


def test_oversized_body_is_invalid() -> None:
    data = make_envelope().data | {"body": "x" * 8001}
    with pytest.raises(InvalidPayload):
        EVENTS.parse("message.sent", 2, data)


def test_v1_message_is_upcast_to_current_version() -> None:
    v1 = {
        "conversation_id": "c1",
        "message_id": "m1",
        "body": "hi",
        "author_kind": "agent",
        "author_id": "a1",
    }
    parsed = EVENTS.parse("message.sent", 1, v1)
    assert parsed.V == 2 and parsed.client_ts_ms is None  # type: ignore[attr-defined]


def test_registry_refuses_duplicate_type_names() -> None:
    model = EVENTS.model_for("message.sent")
    with pytest.raises(ValueError):
        Registry((model, model), {})


def test_commands_and_events_do_not_share_names() -> None:
    assert not set(EVENTS.names()) & set(COMMANDS.names())


def test_event_ids_sort_by_time_and_resends_share_an_id() -> None:
    assert new_event_id(1000) < new_event_id(2000)
    assert derive_event_id("acme", "v1", "k1") == derive_event_id("acme", "v1", "k1")
    assert derive_event_id("acme", "v1", "k1") != derive_event_id("acme", "v2", "k1")
    assert derive_event_id("acme", "v1", "k1") != derive_event_id("other", "v1", "k1")


def test_checked_in_json_schemas_are_current() -> None:
    for name, text in render().items():
        path = DEFAULT_DIR / name
        assert path.exists(), f"run python -m contracts.schemas ({name} missing)"
        assert path.read_text() == text, f"{name} is stale: run python -m contracts.schemas"
