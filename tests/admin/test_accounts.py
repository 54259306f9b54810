"""Sign-up decisions over a folded state: a pending name is held for PENDING_TTL, then freed."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_service.admin.accounts import PENDING_TTL, confirm_sign_up, sign_up
from agent_service.admin.decisions import Rejected
from agent_service.admin.state import AdminState
from contracts import Actor, Envelope
from contracts.commands.admin import ConfirmSignUp, SignUp

SIGNED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def pending_state() -> AdminState:
    data = {
        "tenant_id": "initech",
        "name": "Initech",
        "owner_email": "p@i.test",
        "owner_name": "P",
        "password_hash": "h",
        "token_hash": "t1",
    }
    state = AdminState()
    state.apply(
        Envelope(
            type="tenant.signed_up",
            tenant="initech",
            stream="tenant",
            actor=Actor(kind="system", id="signup"),
            occurred_at=SIGNED_AT,
            data=data,
        )
    )
    return state


def second_sign_up() -> SignUp:
    return SignUp(
        tenant_id="initech",
        name="Initech 2",
        owner_email="x@i.test",
        owner_name="X",
        password_hash="h2",
        token_hash="t2",
    )


def test_a_pending_name_is_held_until_it_expires() -> None:
    state = pending_state()
    with pytest.raises(Rejected) as refused:
        sign_up(
            state, "initech", second_sign_up(), now=SIGNED_AT + PENDING_TTL - timedelta(minutes=1)
        )
    assert refused.value.code == "already_exists"
    [(event_type, data)] = sign_up(
        state, "initech", second_sign_up(), now=SIGNED_AT + PENDING_TTL + timedelta(minutes=1)
    )
    assert event_type == "tenant.signed_up" and data["owner_email"] == "x@i.test"


def test_an_expired_link_no_longer_confirms() -> None:
    state = pending_state()
    assert [
        t
        for t, _ in confirm_sign_up(
            state, "initech", ConfirmSignUp(token_hash="t1"), now=SIGNED_AT + timedelta(hours=1)
        )
    ] == ["tenant.created", "tenant.email_confirmed", "agent.created"]
    with pytest.raises(Rejected) as refused:
        confirm_sign_up(
            state,
            "initech",
            ConfirmSignUp(token_hash="t1"),
            now=SIGNED_AT + PENDING_TTL + timedelta(seconds=1),
        )
    assert refused.value.code == "invalid_token"
