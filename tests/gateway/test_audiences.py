"""Who receives what, over the real gateway and agent service (docs/protocol.md, "Who
receives which event").

Ann takes a conversation, then transfers it to Carol with a note. Bob, another agent of
the tenant who never goes online, sees that the conversation exists and who has it, but
not the offers made to Ann and Carol, not the transfer note and not the visitor's e-mail;
Sue, a supervisor, sees all of it. Absence is checked once a later event that Bob does
receive has arrived: a socket gets events in log order, so what he was due has come by then.
"""

from typing import Any

from tests.gateway.wsclient import Client
from tests.system import RunningSystem

EMAIL = "vera@example.com"
NOTE = "VIP customer, refund already approved"


def about(client: Client, conversation_id: str, type_name: str) -> list[dict[str, Any]]:
    return [
        f["event"]
        for f in client.events(type_name)
        if f["event"]["data"].get("conversation_id") == conversation_id
    ]


async def test_offers_transfer_notes_and_contact_details_reach_only_their_agents(
    system: RunningSystem,
) -> None:
    url = system.gateway.ws_url
    ann = await Client.connect(url, system.agent_token("acme", "ann", name="Ann"))
    bob = await Client.connect(url, system.agent_token("acme", "bob", name="Bob"))
    carol = await Client.connect(url, system.agent_token("acme", "carol", name="Carol"))
    sue = await Client.connect(url, system.agent_token("acme", "sue", role="supervisor"))
    before_it_all = carol.frames[0]["position"]  # hello: the log head when Carol connected
    assert (await ann.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(url, system.visitor_token("acme", "v1"))
    visitor = {"name": "Vera", "email": EMAIL, "page_url": "https://shop.example/cart?o=7"}
    started = await customer.op("start", visitor=visitor, topic="refund")
    assert started["t"] == "ack", started
    conversation_id = started["conversation_id"]

    await ann.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await ann.op("accept", conversation_id=conversation_id))["t"] == "ack"
    for client in (bob, carol, sue, customer):
        await client.wait_event("conversation.accepted", conversation_id=conversation_id)

    # Every agent learns of the request; its contact details only reach the supervisor
    # (and the visitor who gave them).
    [bobs] = about(bob, conversation_id, "conversation.requested")
    assert bobs["data"]["visitor"] == {"id": "v1", "name": "Vera", "avatar_attachment_id": None}
    assert bobs["data"]["topic"] == "refund"
    [sues] = about(sue, conversation_id, "conversation.requested")
    assert sues["data"]["visitor"]["email"] == EMAIL
    [own] = about(customer, conversation_id, "conversation.requested")
    assert own["data"]["visitor"]["email"] == EMAIL
    # The offer was Ann's: the supervisor saw it, the others did not.
    assert about(sue, conversation_id, "conversation.offered")
    assert not about(bob, conversation_id, "conversation.offered")
    assert not about(carol, conversation_id, "conversation.offered")

    assert (await carol.op("status", status="online"))["t"] == "ack"
    transfer = await ann.op(
        "transfer", conversation_id=conversation_id, to_agent_id="carol", note=NOTE
    )
    assert transfer["t"] == "ack", transfer
    offer = await carol.wait_event("conversation.offered", conversation_id=conversation_id)
    assert offer["event"]["data"]["transfer_from"] == "ann"
    for client in (ann, carol, sue):
        requested = await client.wait_event(
            "conversation.transfer_requested", conversation_id=conversation_id
        )
        assert requested["event"]["data"]["note"] == NOTE
    assert (await carol.op("accept", conversation_id=conversation_id))["t"] == "ack"
    await bob.wait_event("conversation.transferred", conversation_id=conversation_id)
    await sue.wait_event("message.system", kind="transferred")

    assert not about(bob, conversation_id, "conversation.transfer_requested")
    assert not about(bob, conversation_id, "conversation.offered")
    assert not about(bob, conversation_id, "message.system")
    assert EMAIL not in str(bob.frames) and NOTE not in str(bob.frames)

    # Carol resumes from before the request: the conversation is hers now, so what was
    # withheld from her when it happened comes whole.
    await carol.close()
    back = await Client.connect(
        url, system.agent_token("acme", "carol", name="Carol"), resume_from=before_it_all
    )
    replayed = await back.wait_event("conversation.requested", conversation_id=conversation_id)
    assert replayed["event"]["data"]["visitor"]["email"] == EMAIL
    await back.wait_event("conversation.transferred", conversation_id=conversation_id)
    # Offers still go only to whom they were made: the transfer's, not Ann's.
    offers = about(back, conversation_id, "conversation.offered")
    assert [e["data"]["agent_ids"] for e in offers] == [["carol"]]
    for client in (ann, bob, sue, customer, back):
        await client.close()
