"""Issue 14, item 7: sessions can be ended, refresh tokens are good once, and a group that
loses a permission takes it from the next HTTP request.

Over a second gateway instance too (same log, same database): revocation is not a
process's private memory.
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.admin.helpers import eventually, login, new_agent, owner_session
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningGateway, RunningSystem, start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[RunningSystem]:
    async with shared_system(vhosts, mongo_server) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def second_gateway(system: RunningSystem) -> AsyncIterator[RunningGateway]:
    """Another gateway process's worth: its own tail, caches and memory; shared log and store."""
    gateway = await start_gateway(system.settings)
    try:
        yield gateway
    finally:
        await gateway.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def http(system: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def other(second_gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=second_gateway.base_url) as client:
        yield client


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/auth/refresh", json={"refresh_token": token})


async def test_a_refresh_token_is_good_once_and_its_reuse_ends_the_family(
    system: RunningSystem, http: httpx.AsyncClient, other: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "rotate")
    first = (await login(http, "rotate", "boss@rotate.test", "correct horse")).json()
    renewed = await refresh(http, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]
    # The first token again — here on the other gateway: the thief (or the owner) is found out.
    reused = await refresh(other, first["refresh_token"])
    assert reused.status_code == 401 and "used twice" in reused.json()["error"]["message"]
    # ...and the whole family ends with it: the newer token no longer works either.
    assert (await refresh(http, second["refresh_token"])).status_code == 401
    # A new sign-in starts a new family.
    again = (await login(http, "rotate", "boss@rotate.test", "correct horse")).json()
    assert (await refresh(other, again["refresh_token"])).status_code == 200


async def test_two_gateways_refreshing_the_same_token_at_once_rotate_it_once(
    system: RunningSystem, http: httpx.AsyncClient, other: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "race")
    token = (await login(http, "race", "boss@race.test", "correct horse")).json()["refresh_token"]
    answers = await asyncio.gather(refresh(http, token), refresh(other, token))
    assert sorted(a.status_code for a in answers) == [200, 401]


async def test_logout_ends_the_session_on_every_gateway(
    system: RunningSystem, http: httpx.AsyncClient, other: httpx.AsyncClient
) -> None:
    await owner_session(system, http, "leave")
    session = (await login(http, "leave", "boss@leave.test", "correct horse")).json()
    renewed = (await refresh(http, session["refresh_token"])).json()
    ended = await http.post("/api/auth/logout", json={"refresh_token": renewed["refresh_token"]})
    assert ended.status_code == 200 and ended.json() == {"ok": True}
    for gateway in (http, other):
        refused = await refresh(gateway, renewed["refresh_token"])
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    forged = await http.post("/api/auth/logout", json={"refresh_token": "abc.def.ghi"})
    assert forged.status_code == 401


async def test_a_group_losing_a_permission_takes_it_from_the_next_request(
    system: RunningSystem, http: httpx.AsyncClient, other: httpx.AsyncClient
) -> None:
    owner = await owner_session(system, http, "regroup")
    group = await http.post(
        "/api/admin/groups",
        headers=owner,
        json={"name": "Team leads", "permissions": ["manage_agents"]},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["group_id"]
    _, ann = await new_agent(http, owner, "regroup", "ann", groups=[group_id])
    assert (await http.get("/api/admin/agents", headers=ann)).status_code == 200
    assert (await other.get("/api/admin/agents", headers=ann)).status_code == 200
    socket = await Client.connect(system.gateway.ws_url, ann["Authorization"].split()[1])

    taken = await http.patch(
        f"/api/admin/groups/{group_id}", headers=owner, json={"permissions": []}
    )
    assert taken.status_code == 200, taken.text
    # The very next request with the same access token, on the gateway that made the change:
    refused = await http.get("/api/admin/agents", headers=ann)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"] == "missing permission manage_agents"

    # The other gateway learns it from the log (milliseconds): then refuses it too.
    async def refused_there() -> bool:
        return (await other.get("/api/admin/agents", headers=ann)).status_code == 403

    await eventually(refused_there, what="the other gateway to learn the change")
    # The agent's socket is closed as for a revoked token (the console refreshes and comes
    # back with what the group grants now).
    assert await socket.wait_closed() == 4401
    # Other requests of the same token still work: only the group's permission is gone.
    assert (await http.get("/api/conversations", headers=ann)).status_code == 200
