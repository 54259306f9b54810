"""Faults under a live conversation; each reports lost / duplicated / recovered as clients saw them.

Every scenario drives a real customer and agent through real gateways, RabbitMQ and
MongoDB, breaks something in the middle, and asserts that every message the customer got
an ack for reached the agent exactly once, the customer's own copy exactly once, and the
history exactly once.
"""

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.fault.conversation import chat, engaged, gateway_client, settle
from tests.fault.processes import PUBLIC_URL, gateway_pair
from tests.servers import OwnRabbitNode, RabbitVhosts
from tests.system import running_system
from tools import cli
from tools.embedded import EmbeddedMongo

# The module runs on a broker node of its own (own_broker, tests/conftest.py): the RabbitMQ
# restart and the connections cut below stop nobody else's broker, so it runs in parallel.
pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def vhosts(own_broker: OwnRabbitNode) -> RabbitVhosts:
    return own_broker.vhosts


async def test_rabbitmq_stopped_and_restarted_mid_conversation(
    settings: Settings, own_broker: OwnRabbitNode
) -> None:
    async with (
        running_system(settings) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        customer, agent, conversation_id, owner = await engaged(
            system, http, [system.gateway.ws_url]
        )
        sent: list[str] = []
        try:
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            await asyncio.to_thread(own_broker.ctl, "stop_app")
            during = asyncio.create_task(
                chat(customer, conversation_id, [f"during-{i}" for i in range(5)], sent)
            )
            # Routes that ask a service (the agent list asks administration): during the
            # outage one answered 500 "internal" at once (aio-pika: "Connection was not
            # opened"); it waits for the broker within its deadline, or says unavailable.
            asked = asyncio.create_task(http.get("/api/admin/agents", headers=owner))
            await asyncio.sleep(2)  # the outage lasts a while (a fault, not a wait for a condition)
        finally:
            await asyncio.to_thread(own_broker.ctl, "start_app")
            await asyncio.to_thread(own_broker.ctl, "await_startup")
        await during
        answer = await asked
        assert answer.status_code == 200 or (
            answer.status_code == 503 and answer.json()["error"]["code"] == "unavailable"
        ), answer.text
        await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
        await settle(
            system, http, owner, customer, agent, conversation_id, sent, "rabbitmq restart"
        )
        # Replay equals live after the restart (sends resent, publishes retried by id): every
        # projection, rebuilt from the archive and from the stream, matches its live read model.
        # In this process (threads, no interpreter start-up each): the command line's own code.
        for projection in ("history", "agent", "billing"):
            for source in ("archive", "stream"):
                argv = ["replay", "--projection", projection, "--source", source]
                assert await asyncio.to_thread(cli.main, argv, system.settings) == 0, argv
        await customer.stop()
        await agent.stop()


async def test_broker_connections_cut_mid_conversation(
    settings: Settings, vhosts: RabbitVhosts
) -> None:
    vhost = urllib.parse.unquote(settings.amqp_url.rsplit("/", 1)[1])
    async with (
        running_system(settings) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        customer, agent, conversation_id, owner = await engaged(
            system, http, [system.gateway.ws_url]
        )
        sent: list[str] = []
        await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
        async with httpx.AsyncClient(
            base_url=vhosts.management_url, auth=(vhosts.user, vhosts.password)
        ) as management:

            async def listed() -> list[dict[str, Any]]:
                # The management API learns of connections with its stats interval: poll.
                return [
                    c
                    for c in (await management.get("/api/connections")).json()
                    if c.get("vhost") == vhost
                ]

            connections = await eventually(
                listed, timeout=30, what="the services' connections in the management API"
            )
            for connection in connections:
                await management.delete(
                    f"/api/connections/{urllib.parse.quote(connection['name'], safe='')}",
                    headers={"X-Reason": "fault test"},
                )
        await chat(customer, conversation_id, [f"after-{i}" for i in range(10)], sent)
        await settle(
            system,
            http,
            owner,
            customer,
            agent,
            conversation_id,
            sent,
            f"{len(connections)} broker connections cut",
        )
        await customer.stop()
        await agent.stop()


async def test_a_gateway_killed_under_its_clients_they_resume_on_another(
    settings: Settings,
) -> None:
    async with (
        running_system(settings) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        async with gateway_pair(system.settings) as gateways:
            customer, agent, conversation_id, owner = await engaged(
                system, http, gateways.ws_urls, console_origin=PUBLIC_URL
            )
            sent: list[str] = []
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            gateways.kill_doomed()
            await chat(customer, conversation_id, [f"after-{i}" for i in range(10)], sent)
            await settle(
                system,
                http,
                owner,
                customer,
                agent,
                conversation_id,
                sent,
                "gateway killed (SIGKILL)",
            )
            assert customer.reconnects >= 1 and agent.reconnects >= 1
            await customer.stop()
            await agent.stop()


async def test_mongodb_unavailable_then_back(settings: Settings, tmp_path: Path) -> None:
    mongo = EmbeddedMongo(str(tmp_path / "mongo")).start()
    try:
        local = settings.model_copy(update={"mongo_url": mongo.url})
        async with (
            running_system(local) as system,
            gateway_client(system.gateway.base_url, timeout=20) as http,
        ):
            customer, agent, conversation_id, owner = await engaged(
                system, http, [system.gateway.ws_url]
            )
            sent: list[str] = []
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            mongo.stop()
            # Chat goes on without the database: the log is the record, history catches up later.
            await chat(customer, conversation_id, [f"during-{i}" for i in range(5)], sent)
            await eventually(
                lambda: all(agent.bodies("customer")[b] for b in sent),
                what="live delivery during the outage",
            )
            await asyncio.to_thread(mongo.start)
            await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
            await settle(
                system, http, owner, customer, agent, conversation_id, sent, "mongodb outage"
            )
            await customer.stop()
            await agent.stop()
    finally:
        mongo.stop()


async def test_a_poison_event_on_the_log_does_not_stop_anyone(settings: Settings) -> None:
    import aio_pika

    from contracts import topology as names

    async with (
        running_system(settings) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        customer, agent, conversation_id, owner = await engaged(
            system, http, [system.gateway.ws_url]
        )
        sent: list[str] = []
        await chat(customer, conversation_id, [f"before-{i}" for i in range(3)], sent)
        connection = await aio_pika.connect(system.settings.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(names.EVENTS_EXCHANGE)
            await exchange.publish(
                aio_pika.Message(body=b"\x00not an envelope"), routing_key="fault.poison"
            )
            await exchange.publish(
                aio_pika.Message(body=b'{"id":"x","type":"no.such_type","v":1}'),
                routing_key="fault.poison",
            )
            await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
            await settle(
                system,
                http,
                owner,
                customer,
                agent,
                conversation_id,
                sent,
                "poison events on the log",
            )
            dead = await channel.declare_queue(names.DEAD_QUEUE, passive=True)
            reasons = []
            while (message := await dead.get(timeout=5, fail=False)) is not None:
                reasons.append(message.headers.get("x-relaydesk-reason", ""))
                await message.ack()
            assert any("undecodable" in reason for reason in reasons), reasons
        finally:
            await connection.close()
        await customer.stop()
        await agent.stop()
