"""A service SIGKILLed while messages flow, as its own OS process, then restarted.

The kill lands wherever the service happens to be: between writing a batch and its
checkpoint (history), between publishing a decision and acking its command (routing).
Whatever the moment, the read models, the archive's chain and the routing state must come
out exactly as the log says, and clients must see every message exactly once.
"""

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.fault.conversation import acked_more, chat_until, engaged, gateway_client, settle
from tests.fault.driver import ResilientClient, tally
from tests.fault.processes import ServiceProcess, relaydesk_tool
from tests.system import running_system

# Only the test's own service process is killed (the shared broker keeps running), and
# however many messages a slow restart lets through, the read model is read page by page.
pytestmark = pytest.mark.fault
NEWCOMERS = (
    8  # visitors who start a conversation as agent_service dies (alice gets room for all of them)
)


async def kill_and_restart(service: ServiceProcess, sent: list[str]) -> None:
    """SIGKILL with messages flowing, start it again, let it work a while before anything else."""
    await acked_more(sent, 8)
    service.kill()
    await acked_more(sent, 5)  # the chat goes on while it is down
    await service.start()
    await acked_more(sent, 8)


def duplicated_events(client: ResilientClient) -> int:
    """Deliveries of an event id already delivered: a re-emitted decision shows up here."""
    return sum(
        n - 1 for n in Counter(f["event"]["id"] for f in client.deliveries).values() if n > 1
    )


async def test_history_service_killed_twice_mid_batch_every_message_archived_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        running_system(settings, with_history=False) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        history = await ServiceProcess("history", system.settings, tmp_path).start()
        try:
            customer, agent, conversation_id, owner = await engaged(
                system, http, [system.gateway.ws_url]
            )
            sent: list[str] = []
            stop = asyncio.Event()
            flowing = asyncio.create_task(chat_until(stop, customer, conversation_id, sent))
            await kill_and_restart(history, sent)
            await kill_and_restart(
                history, sent
            )  # the second kill lands while it catches up and archives live
            stop.set()
            await flowing
            await settle(
                system,
                http,
                owner,
                customer,
                agent,
                conversation_id,
                sent,
                "history_service killed twice (SIGKILL)",
            )

            # The console's read models, not only the archive: each message once, the count right.
            # Every page, oldest last: how many messages flowed depends on the machine's speed.
            entries: list[dict[str, object]] = []
            before: int | None = None
            while True:
                params = {"limit": 200, **({"before": before} if before is not None else {})}
                page = await http.get(
                    f"/api/conversations/{conversation_id}/messages", params=params, headers=owner
                )
                assert page.status_code == 200, page.text
                if not page.json():
                    break
                entries += page.json()
                before = min(m["position"] for m in page.json())
            chat_messages = [
                m["event"]["data"] for m in entries if m["event"]["type"] == "message.sent"
            ]
            read_model = tally(
                "history_service killed (messages read model)",
                sent,
                Counter(m["body"] for m in chat_messages if m["author_kind"] == "customer"),
                0,
            )
            assert read_model.lost == 0 and read_model.duplicated == 0, read_model
            listed = await http.get("/api/conversations", params={"view": "all"}, headers=owner)
            row = next(c for c in listed.json() if c["conversation_id"] == conversation_id)
            assert row["message_count"] == len(chat_messages) == len(sent), (
                row["message_count"],
                len(chat_messages),
                len(sent),
            )

            # Rebuilt from the archive, the read models are identical; the hash chain has no gap or
            # repeat.
            replayed = await relaydesk_tool(system.settings, "replay", "--projection", "history")
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr
            verified = await relaydesk_tool(system.settings, "audit", "verify", "--tenant", "fault")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            await customer.stop()
            await agent.stop()
        finally:
            history.stop()


async def test_agent_service_killed_while_routing_state_intact_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        running_system(settings, with_agent=False) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        routing = await ServiceProcess("agent", system.settings, tmp_path).start()
        newcomers: list[ResilientClient] = []
        try:
            customer, agent, conversation_id, owner = await engaged(
                system, http, [system.gateway.ws_url], max_chats=NEWCOMERS + 2
            )
            sent: list[str] = []
            stop = asyncio.Event()
            flowing = asyncio.create_task(chat_until(stop, customer, conversation_id, sent))
            await acked_more(sent, 5)
            for k in range(NEWCOMERS):
                newcomers.append(
                    await ResilientClient(
                        [system.gateway.ws_url],
                        system.visitor_token("fault", f"newcomer-{k}"),
                        "https://shop.example",
                    ).start()
                )
            # Killed the moment the first newcomer's offer reaches alice: the rest of the burst is
            # being decided, published or acked then, or still queued; all go to the new process.
            first_chat = conversation_id

            def strike(frame: dict[str, Any]) -> None:
                event = frame["event"]
                if (
                    event["type"] == "conversation.offered"
                    and event["data"]["conversation_id"] != first_chat
                    and routing.alive
                ):
                    routing.kill(wait=False)

            agent.on_event = strike
            starts = [
                asyncio.create_task(c.op("start", key=f"start-{k}", visitor={"name": f"New {k}"}))
                for k, c in enumerate(newcomers)
            ]
            await eventually(lambda: not routing.alive, timeout=60, what="the kill")
            agent.on_event = None
            await acked_more(sent, 5)  # customer messages do not wait for routing
            await routing.start()
            started = [reply["conversation_id"] for reply in await asyncio.gather(*starts)]
            stop.set()
            await flowing
            assert len(set(started)) == NEWCOMERS, started

            # The state survived: alice is still online (each newcomer is offered to her) and still
            # holds the first chat (her reply reaches its customer); nothing was decided twice.
            for k, (client, new_id) in enumerate(zip(newcomers, started, strict=True)):
                await agent.wait_event("conversation.offered", conversation_id=new_id)
                assert (await agent.op("accept", key=f"accept-{k}", conversation_id=new_id))[
                    "t"
                ] == "ack"
                # The gateway learns of the accept from the log, a moment after the ack (see the
                # report: a send right after the ack can be refused 'forbidden'); the console
                # waits for it too.
                await agent.wait_event("conversation.accepted", conversation_id=new_id)
                replied = await agent.op(
                    "send", key=f"reply-{k}", conversation_id=new_id, body=f"hello newcomer {k}"
                )
                assert replied["t"] == "ack", replied
                await client.wait_event("message.sent", body=f"hello newcomer {k}")
            assert (
                await agent.op(
                    "send", key="reply-first", conversation_id=conversation_id, body="still here"
                )
            )["t"] == "ack"
            await customer.wait_event("message.sent", body="still here")
            await settle(
                system,
                http,
                owner,
                customer,
                agent,
                conversation_id,
                sent,
                "agent_service killed (SIGKILL)",
            )
            routed = tally(
                "agent_service killed (conversations started across it)",
                started,
                Counter(
                    f["event"]["data"]["conversation_id"]
                    for f in agent.deliveries
                    if f["event"]["type"] == "conversation.offered"
                    and f["event"]["data"]["conversation_id"] in started
                ),
                sum(c.recovered for c in newcomers),
            )
            assert routed.lost == 0 and routed.duplicated == 0, routed
            for who, client in (
                ("agent", agent),
                ("customer", customer),
                *((f"newcomer {k}", c) for k, c in enumerate(newcomers)),
            ):
                assert duplicated_events(client) == 0, f"{who} got an event twice"
            for k, client in enumerate(newcomers):
                assert client.bodies("agent")[f"hello newcomer {k}"] == 1

            # agent_service's live answer for every conversation equals the fold of the log.
            replayed = await relaydesk_tool(
                system.settings, "replay", "--projection", "agent", "--source", "stream"
            )
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr
            assert "identical to the live projection" in replayed.stdout
            await customer.stop()
            await agent.stop()
        finally:
            for client in newcomers:
                await client.stop()
            routing.stop()
