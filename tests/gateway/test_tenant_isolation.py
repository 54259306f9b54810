"""Another tenant's ids, on the routes and ops not covered elsewhere: refused, nothing leaked.

Acme has a served and closed conversation and an invoice; Globex's owner (every
permission) and a Globex visitor try them by id. One system is shared by the module; its
billing runs on the 1st of next month, so this month (the one acme used) has ended and is
closed, as billing closes a month once it is over.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from tests.admin.helpers import admin_command, eventually, new_agent, owner_session
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem, next_month_start

pytestmark = pytest.mark.asyncio(loop_scope="module")
SECRET = "acme-only secret"


@dataclass
class Acme:
    system: RunningSystem
    http: httpx.AsyncClient
    owner: dict[str, str]
    globex: dict[str, str]
    ann: Client
    ann_id: str
    conversation_id: str
    message_id: str
    invoice: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def acme(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[Acme]:
    async with (
        shared_system(vhosts, mongo_server, billing_clock=next_month_start) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner, globex = (
            await owner_session(system, http, "acme", "saas"),
            await owner_session(system, http, "globex", "saas"),
        )
        ann_id, ann_auth = await new_agent(http, owner, "acme", "ann")
        ann = await Client.connect(system.gateway.ws_url, ann_auth["Authorization"].split()[1])
        assert (await ann.op("status", status="online"))["t"] == "ack"
        customer = await Client.connect(system.gateway.ws_url, system.visitor_token("acme", "v1"))
        conversation_id = (await customer.op("start"))["conversation_id"]
        await ann.wait_event("conversation.offered", conversation_id=conversation_id)
        assert (await ann.op("accept", conversation_id=conversation_id))["t"] == "ack"
        message_id = (await customer.op("send", conversation_id=conversation_id, body=SECRET))[
            "message_id"
        ]
        assert (await ann.op("close", conversation_id=conversation_id))["t"] == "ack"
        await customer.close()
        assert (
            await admin_command(
                system.settings,
                "close-period",
                "--tenant",
                "acme",
                "--period",
                f"{datetime.now(UTC):%Y-%m}",  # the month acme used, ended for billing
            )
            == 0
        )

        async def ready() -> str | None:
            invoices = (await http.get("/api/billing/account", headers=owner)).json().get(
                "invoices"
            ) or []
            timeline = await http.get(
                f"/api/audit/conversations/{conversation_id}/timeline", headers=owner
            )
            return (
                invoices[0]["number"]
                if invoices and timeline.status_code == 200 and SECRET in timeline.text
                else None
            )

        invoice = await eventually(ready, what="acme's invoice and archived conversation")
        yield Acme(system, http, owner, globex, ann, ann_id, conversation_id, message_id, invoice)
        await ann.close()


def refused_cleanly(response: httpx.Response, *ids: str) -> None:
    assert response.status_code in (403, 404), (response.request.url, response.text)
    error = response.json()["error"]
    assert error["code"] in ("forbidden", "not_found") and error["message"], response.text
    assert SECRET not in response.text and not any(i in response.text for i in ids), response.text


async def test_audit_billing_and_transcript_routes_refuse_another_tenants_ids(acme: Acme) -> None:
    now = datetime.now(UTC).isoformat()
    cid, http = acme.conversation_id, acme.http
    # The owner of acme sees each of them: the ids are real, the refusals below are isolation.
    for path, params in [
        (f"/api/audit/conversations/{cid}/timeline", {}),
        (f"/api/audit/conversations/{cid}/state", {"at": now}),
        (f"/api/billing/invoices/{acme.invoice}.json", {}),
        (f"/api/billing/invoices/{acme.invoice}.html", {}),
        (f"/api/conversations/{cid}/transcript", {}),
    ]:
        assert (await http.get(path, headers=acme.owner, params=params)).status_code == 200, path
        answer = await http.get(path, headers=acme.globex, params=params)
        assert answer.status_code == 404, (path, answer.text)
        refused_cleanly(answer, acme.ann_id, acme.message_id)
    # Acme's own visitors may only read their own conversation.
    stranger = {"Authorization": f"Bearer {acme.system.visitor_token('acme', 'v-other')}"}
    refused_cleanly(
        await http.get(f"/api/conversations/{cid}/transcript", headers=stranger), acme.message_id
    )
    globex_visitor = {
        "Authorization": f"Bearer {acme.system.visitor_token('globex', 'v1')}"
    }  # same visitor id, other tenant
    refused_cleanly(
        await http.get(f"/api/conversations/{cid}/transcript", headers=globex_visitor),
        acme.message_id,
    )


async def test_read_decline_and_status_ops_with_another_tenants_ids(acme: Acme) -> None:
    gus = await Client.connect(acme.system.gateway.ws_url, acme.globex["Authorization"].split()[1])
    visitor = await Client.connect(
        acme.system.gateway.ws_url, acme.system.visitor_token("globex", "v1")
    )
    try:
        for client, op, fields in [
            (gus, "read", {"message_id": acme.message_id}),
            (gus, "decline", {}),
            (visitor, "read", {"message_id": acme.message_id}),
        ]:
            answer = await client.op(op, conversation_id=acme.conversation_id, **fields)
            assert answer["t"] == "error" and answer["code"] == "not_found", (op, answer)
        # status takes no conversation; an agent_id smuggled into it is refused (unknown fields
        # are, since issue 14), and Gus can only ever set his own.
        smuggled = await gus.op("status", status="away", agent_id=acme.ann_id)
        assert smuggled["code"] == "invalid_payload" and smuggled["field"] == "agent_id", smuggled
        status = await gus.op("status", status="away")
        assert status["t"] == "ack", status
        mine = await gus.wait_for(
            lambda f: f["t"] == "event" and f["event"]["id"] == status["event_id"]
        )
        assert (
            mine["event"]["tenant"] == "globex" and mine["event"]["data"]["agent_id"] != acme.ann_id
        )
        # A marker on acme's side, then nothing of acme's reached globex nor globex's reached acme.
        marker = await acme.ann.op("status", status="online")
        await acme.ann.wait_for(
            lambda f: f["t"] == "event" and f["event"]["id"] == marker["event_id"]
        )
        assert not [
            f
            for f in acme.ann.frames
            if f["t"] == "event" and f["event"]["id"] == status["event_id"]
        ]
        for frame in gus.frames + visitor.frames:
            assert (
                acme.conversation_id not in str(frame)
                and SECRET not in str(frame)
                and acme.ann_id not in str(frame)
            ), frame
    finally:
        await gus.close()
        await visitor.close()
