"""Access tokens expire on open sockets (4401); refresh tokens renew, and stop when they should.

The shared system issues 4-second access tokens, so expiry is observed, not simulated.
"""

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
import pytest_asyncio

from tests.admin.helpers import login, new_agent, owner_session
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")
TTL_S = 4


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[RunningSystem]:
    async with shared_system(vhosts, mongo_server, access_token_ttl_s=TTL_S) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http(system: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as client:
        yield client


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/auth/refresh", json={"refresh_token": token})


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert (
        response.json()["error"]["code"] == "unauthorized" and "access_token" not in response.json()
    )


async def test_an_open_socket_is_closed_with_4401_when_its_access_token_expires(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "expiry")
    issued = time.time()
    tokens = (await login(http, "expiry", "boss@expiry.test", "correct horse")).json()
    assert tokens["expires_in"] == TTL_S
    socket = await Client.connect(system.gateway.ws_url, tokens["access_token"])
    assert socket.frames[0]["t"] == "hello"
    assert await socket.wait_closed(timeout=TTL_S + 10) == 4401
    assert time.time() - issued >= TTL_S - 1  # closed by the expiry, not at once


async def test_refresh_gives_a_working_access_token(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "renew")
    first = (await login(http, "renew", "boss@renew.test", "correct horse")).json()
    renewed = await refresh(http, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["access_token"] != first["access_token"] and body["agent"]["role"] == "owner"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await http.get("/api/admin/agents", headers=headers)).status_code == 200
    socket = await Client.connect(system.gateway.ws_url, body["access_token"])
    assert socket.frames[0]["session"]["tenant"] == "renew"
    await socket.close()
    assert (
        await refresh(http, body["refresh_token"])
    ).status_code == 200  # the new refresh token works too


async def test_refresh_is_refused_after_removal_or_a_role_change(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    owner = await owner_session(system, http, "revoke")
    ann_id, _ = await new_agent(http, owner, "revoke", "ann")
    bob_id, _ = await new_agent(http, owner, "revoke", "bob")
    ann = (await login(http, "revoke", "ann@revoke.test", "ann-password")).json()["refresh_token"]
    bob = (await login(http, "revoke", "bob@revoke.test", "bob-password")).json()["refresh_token"]
    assert (await http.delete(f"/api/admin/agents/{ann_id}", headers=owner)).status_code == 200
    assert (
        await http.patch(f"/api/admin/agents/{bob_id}", headers=owner, json={"role": "supervisor"})
    ).status_code == 200
    # Straight after the admin's answer: the refresh asks the admin service, which has decided.
    assert_refused(await refresh(http, ann))
    assert_refused(await refresh(http, bob))
    fresh = (await login(http, "revoke", "bob@revoke.test", "bob-password")).json()
    assert (
        fresh["agent"]["role"] == "supervisor"
        and (await refresh(http, fresh["refresh_token"])).status_code == 200
    )


async def test_forged_expired_and_wrong_kind_refresh_tokens_are_refused(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "forge")
    real = (await login(http, "forge", "boss@forge.test", "correct horse")).json()
    claims = jwt.decode(real["refresh_token"], options={"verify_signature": False})
    secret = system.settings.jwt_secret.get_secret_value()
    now = int(time.time())
    for name, token in {
        "wrong_key": jwt.encode(claims, "an-attacker-key-an-attacker-key-xx", algorithm="HS256"),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256"
        ),
        "access_as_refresh": real["access_token"],
        "refresh_audience_access_typ": jwt.encode(
            {**claims, "typ": "access"}, secret, algorithm="HS256"
        ),
        "garbage": "abc.def.ghi",
    }.items():
        response = await refresh(http, token)
        assert response.status_code == 401, (name, response.text)
        assert_refused(response)
