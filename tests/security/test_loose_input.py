"""Issue 14, item 11: input that is not what the protocol says is refused, and said so.

Unknown tenants, binary frames, wrongly typed or unknown op fields, read receipts for
messages that do not exist, visitor sockets without an Origin where sites are named,
JSON nested too deep over HTTP, resume positions that are not positions.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from tests.admin.helpers import admin_command, owner_session
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[RunningSystem]:
    async with shared_system(vhosts, mongo_server) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http(system: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as client:
        yield client


async def engaged(system: RunningSystem, tenant: str) -> tuple[Client, Client, str]:
    agent = await Client.connect(system.gateway.ws_url, system.agent_token(tenant, "ann"))
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(tenant, "v1"))
    conversation_id = (await customer.op("start", visitor={"name": "Vic"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    await customer.wait_event("conversation.accepted", conversation_id=conversation_id)
    return agent, customer, conversation_id


async def test_a_visitor_session_needs_a_tenant_that_exists(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    nobody = await http.post("/api/visitor/session", json={"tenant": "no-such-shop"})
    assert nobody.status_code == 404
    assert nobody.json()["error"] == {"code": "not_found", "message": "no such workspace"}
    assert "visitor_token" not in nobody.text
    assert (
        await admin_command(system.settings, "create-tenant", "--tenant", "shop", "--name", "Shop")
        == 0
    )
    # Created a moment ago: served at once (the gateway asks; a tenant it was told is
    # unknown is asked again once the log shows its creation).
    session = await http.post("/api/visitor/session", json={"tenant": "shop"})
    assert session.status_code == 200 and session.json()["visitor_token"]


async def test_binary_frames_close_the_socket_with_1003_unexecuted(
    system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged(system, "binary")
    frame = b'{"op": "send", "id": "b1", "conversation_id": "%s", "body": "as bytes"}' % (
        conversation_id.encode()
    )
    await customer.connection.send(frame)  # bytes: a binary frame
    assert await customer.wait_closed() == 1003
    marker = await agent.op("send", conversation_id=conversation_id, body="marker")
    await agent.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == marker["event_id"])
    bodies = [f["event"]["data"]["body"] for f in agent.events("message.sent")]
    assert bodies == ["marker"]


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("typing", {"typing": "no"}, "typing"),
    ("typing", {}, "typing"),
    ("send", {"body": "hi", "client_ts_ms": "soon"}, "client_ts_ms"),
    ("send", {"body": "hi", "client_ts_ms": True}, "client_ts_ms"),
    ("send", {"body": "hi", "colour": "red"}, "colour"),
    ("send", {"body": 42}, "body"),
    ("close", {"reason": ["x"]}, "reason"),
    ("start", {"visitor": "x"}, "visitor"),
    ("start", {"visitor": {"name": 12345}}, "visitor.name"),
    ("start", {"visitor": {"name": "Vic", "id": "someone-else"}}, "visitor.id"),
    ("start", {"topic": 7}, "topic"),
    ("rate", {"score": "5"}, "score"),
    ("rate", {"score": 4.5}, "score"),
    ("read", {}, "message_id"),
    ("status", {"status": "online", "max_chats": "3"}, "max_chats"),
    ("transfer", {"to_agent_id": 5}, "to_agent_id"),
]


async def test_every_op_is_validated_strictly_and_the_error_names_the_field(
    system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged(system, "strict")
    for op, fields, field in REFUSED:
        client = agent if op in ("status", "transfer") else customer
        if op not in ("start", "status"):
            fields = {"conversation_id": conversation_id, **fields}
        answer = await client.op(op, **fields)
        assert answer["t"] == "error" and answer["code"] == "invalid_payload", (op, answer)
        assert answer["field"] == field and field in answer["message"], (op, answer)
        assert set(answer) == {"t", "id", "code", "message", "field"}
    # Nothing of that reached the log: the agent sees only the marker after the refusals.
    seen = len(agent.events())
    marker = await customer.op("send", conversation_id=conversation_id, body="marker")
    await agent.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == marker["event_id"])
    assert [f["event"]["type"] for f in agent.events()[seen:]] == ["message.sent"]
    # Well-typed ones still go through.
    assert (await customer.op("typing", conversation_id=conversation_id, typing=False))["t"] == (
        "ack"
    )


async def test_a_read_receipt_must_name_a_message_of_that_conversation(
    system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged(system, "receipts")
    sent = await agent.op("send", conversation_id=conversation_id, body="hello")
    await customer.wait_event("message.sent", conversation_id=conversation_id)
    made_up = await customer.op(
        "read", conversation_id=conversation_id, message_id="e0000000000000000000000000000"
    )
    assert made_up["code"] == "not_found" and made_up["field"] == "message_id", made_up
    read = await customer.op("read", conversation_id=conversation_id, message_id=sent["message_id"])
    assert read["t"] == "ack", read
    receipt = await agent.wait_event("message.read")  # in log order: the made-up one first
    assert receipt["event"]["data"]["message_id"] == sent["message_id"]
    assert len(agent.events("message.read")) == 1


async def test_a_visitor_socket_without_origin_is_refused_where_sites_are_named(
    system: RunningSystem, http: httpx.AsyncClient
) -> None:
    owner = await owner_session(system, http, "sited")
    changed = await http.patch(
        "/api/admin/settings", headers=owner, json={"allowed_origins": ["https://shop.sited.test"]}
    )
    assert changed.status_code == 200, changed.text
    token = system.visitor_token("sited", "v1")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{system.gateway.ws_url}?token={token}")  # no Origin header
    assert refused.value.response.status_code == 403
    allowed = await Client.connect(system.gateway.ws_url, token, origin="https://shop.sited.test")
    await allowed.close()
    # A tenant that names no site keeps accepting any page, and clients without an Origin.
    anywhere = await Client.connect(system.gateway.ws_url, system.visitor_token("open", "v1"))
    await anywhere.close()


async def test_http_errors_all_have_the_documented_shape(http: httpx.AsyncClient) -> None:
    nested = "[" * 4_000 + "]" * 4_000  # deeper than any JSON parser's recursion, under 16 KiB
    answers = {
        "nested": await http.post(
            "/api/auth/login", content=nested, headers={"Content-Type": "application/json"}
        ),
        "nested object": await http.post(
            "/api/visitor/session",
            content='{"tenant": ' + nested + "}",
            headers={"Content-Type": "application/json"},
        ),
        "unknown route": await http.get("/api/no-such-route"),
        "wrong method": await http.delete("/api/auth/login"),
    }
    for name, answer in answers.items():
        body = answer.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, (name, body)
        assert 400 <= answer.status_code < 500, (name, answer.status_code)
    assert answers["nested"].json()["error"]["code"] == "invalid_payload"
    assert answers["unknown route"].json()["error"]["code"] == "not_found"
    assert answers["wrong method"].json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("position", ["abc", "-1", "1e3", "%205", "1000000000000"])
async def test_resume_from_must_be_a_position_of_the_log(
    system: RunningSystem, position: str
) -> None:
    token = system.visitor_token("resume", "v1")
    async with websockets.connect(
        f"{system.gateway.ws_url}?token={token}&resume_from={position}"
    ) as socket:
        frame = await socket.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert '"field":"resume_from"' in str(frame) and '"code":"invalid_payload"' in str(frame)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    # A real position is fine.
    good = await Client.connect(system.gateway.ws_url, token, resume_from=0)
    assert good.frames[0]["t"] == "hello"
    await good.close()
