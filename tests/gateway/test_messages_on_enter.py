"""The last-N-messages read takes N from the tenant's ``messages_on_enter`` setting."""

import httpx

from tests.admin.helpers import eventually, owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem


async def test_messages_read_defaults_to_the_tenants_messages_on_enter(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "moe")
        visitor = system.visitor_token("moe", "v-moe")
        customer = await Client.connect(system.gateway.ws_url, visitor)
        conversation_id = (await customer.op("start", visitor={"name": "Mo"}))["conversation_id"]
        bodies = [f"message {n}" for n in range(6)]
        for body in bodies:
            assert (await customer.op("send", conversation_id=conversation_id, body=body))[
                "t"
            ] == "ack"
        url = f"/api/conversations/{conversation_id}/messages"
        auth = {"Authorization": f"Bearer {visitor}"}

        async def sent_bodies(**params: object) -> list[str]:
            items = (await http.get(url, headers=auth, params=params)).json()
            return [
                item["event"]["data"]["body"]
                for item in items
                if item["event"]["type"] == "message.sent"
            ]

        async def all_archived() -> bool:
            return await sent_bodies(limit=500) == bodies

        await eventually(all_archived, what="the six messages archived")
        everything = (await http.get(url, headers=auth)).json()  # the default (50) and a warm cache
        assert len(everything) > 6

        assert (
            await http.patch("/api/admin/settings", headers=owner, json={"messages_on_enter": 3})
        ).status_code == 200
        last_three = (await http.get(url, headers=auth)).json()
        assert [item["event"]["data"]["body"] for item in last_three] == bodies[-3:]
        assert (
            len((await http.get(url, headers=auth, params={"limit": 5})).json()) == 5
        )  # an explicit limit still wins

        assert (
            await http.patch("/api/admin/settings", headers=owner, json={"messages_on_enter": 4})
        ).status_code == 200
        assert await sent_bodies() == bodies[-4:]
        # paging back uses the same N: the offline note, then the first three messages
        earlier = (
            await http.get(url, headers=auth, params={"before": last_three[0]["position"]})
        ).json()
        assert [item["event"]["type"] for item in earlier] == ["message.system"] + [
            "message.sent"
        ] * 3
        assert [item["event"]["data"]["body"] for item in earlier[1:]] == bodies[:3]
        await customer.close()
