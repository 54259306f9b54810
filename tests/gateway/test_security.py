"""Handshake refusals and tenant isolation on the websocket and the HTTP API.

One system is shared by the module (tests/conftest.py's ``module_system``); each test has
tenants of its own.
"""

import base64
import time

import httpx
import jwt
import orjson
import pytest
import websockets

from gateway.auth.tokens import AUDIENCES, ISSUER
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _rsa_private_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _swap_alg(token: str, alg: str) -> str:
    _, payload, signature = token.split(".")
    return _b64({"alg": alg, "typ": "JWT"}) + "." + payload + "." + signature


def forged_tokens(system: RunningSystem) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "ann",
        "tenant": "forged",
        "role": "owner",
        "perms": ["see_all_conversations"],
        "typ": "access",
        "iss": ISSUER,
        "aud": AUDIENCES["access"],
        "iat": now,
        "exp": now + 600,
    }
    secret = system.settings.jwt_secret.get_secret_value()
    return {
        "alg_none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "wrong_key": jwt.encode(claims, "not-the-secret-at-all-not-the-secret", algorithm="HS256"),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256"
        ),
        "hs512_substitution": jwt.encode(claims, secret * 2, algorithm="HS512"),
        "refresh_as_access": jwt.encode(
            {**claims, "typ": "refresh", "aud": AUDIENCES["refresh"]}, secret, algorithm="HS256"
        ),
        "visitor_key_for_agent": jwt.encode(
            claims, system.settings.visitor_secret.get_secret_value(), algorithm="HS256"
        ),
        # Algorithm confusion: an RS256 token signed with the attacker's own key pair, and one
        # claiming RS256 while HMAC-signed with our secret (the classic HS/RS swap).
        "rs256_own_key": jwt.encode(claims, _rsa_private_pem(), algorithm="RS256"),
        "rs256_header_hmac_body": _swap_alg(jwt.encode(claims, secret, algorithm="HS256"), "RS256"),
        "garbage": "abc.def.ghi",
        "empty": "",
    }


async def test_forged_expired_and_wrong_kind_tokens_are_refused_at_the_handshake(
    module_system: RunningSystem,
) -> None:
    for name, token in forged_tokens(module_system).items():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{module_system.gateway.ws_url}?token={token}")
        assert refused.value.response.status_code == 403, name
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        for name, token in forged_tokens(module_system).items():
            if not token:
                continue  # an empty header value is refused by the HTTP client itself
            response = await http.get(
                "/api/conversations", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, name
            assert response.json()["error"]["code"] == "unauthorized"


async def test_agent_socket_from_a_foreign_site_is_refused(module_system: RunningSystem) -> None:
    token = module_system.agent_token("origin", "ann")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            f"{module_system.gateway.ws_url}?token={token}",
            additional_headers={"Origin": "https://evil.example"},
        )
    ok = await Client.connect(
        module_system.gateway.ws_url, token, origin=module_system.gateway.base_url
    )
    await ok.close()


async def test_cross_tenant_access_is_refused_everywhere(module_system: RunningSystem) -> None:
    ann = await Client.connect(
        module_system.gateway.ws_url, module_system.agent_token("isoacme", "ann")
    )
    await ann.op("status", status="online")
    customer = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("isoacme", "v1")
    )
    conversation_id = (await customer.op("start"))["conversation_id"]
    await ann.wait_event("conversation.offered", conversation_id=conversation_id)
    await ann.op("accept", conversation_id=conversation_id)
    await customer.op("send", conversation_id=conversation_id, body="acme secret")

    intruder = await Client.connect(
        module_system.gateway.ws_url, module_system.agent_token("isoglobex", "gus", role="owner")
    )
    outsider = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("isoacme", "v-other")
    )
    for op, fields in [
        ("send", {"body": "hi"}),
        ("accept", {}),
        ("close", {}),
        ("typing", {"typing": True}),
        ("transfer", {"to_agent_id": "gus"}),
    ]:
        answer = await intruder.op(op, conversation_id=conversation_id, **fields)
        assert answer["t"] == "error" and answer["code"] in ("not_found", "forbidden"), (op, answer)
    for op, fields in [("send", {"body": "hi"}), ("close", {}), ("rate", {"score": 1})]:
        answer = await outsider.op(op, conversation_id=conversation_id, **fields)
        assert answer["t"] == "error" and answer["code"] in ("not_found", "forbidden"), (op, answer)
    marker = await customer.op("send", conversation_id=conversation_id, body="after the attempts")
    await ann.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == marker["event_id"])
    leaked = [
        f
        for f in intruder.frames + outsider.frames
        if f["t"] == "event" and f["event"]["data"].get("conversation_id") == conversation_id
    ]
    assert leaked == []
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        for token in (
            module_system.agent_token("isoglobex", "gus", role="owner"),
            module_system.visitor_token("isoacme", "v-other"),
        ):
            response = await http.get(
                f"/api/conversations/{conversation_id}/messages",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code in (403, 404), response.text


async def test_query_operator_injection_in_ids_is_rejected(module_system: RunningSystem) -> None:
    customer = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("injection", "v1")
    )
    answer = await customer.op("send", conversation_id={"$gt": ""}, body="x")
    assert answer["t"] == "error" and answer["code"] == "invalid_payload"
