"""Faults under a live conversation; each reports lost / duplicated / recovered as clients saw them.

Every scenario drives a real customer and agent through real gateways, RabbitMQ and
MongoDB, breaks something in the middle, and asserts that every message the customer got
an ack for reached the agent exactly once, the customer's own copy exactly once, and the
history exactly once.
"""

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaydesk.embedded import EmbeddedMongo, free_port
from relaydesk.settings import Settings
from tests.admin.helpers import eventually, new_agent, owner_session
from tests.fault.driver import ResilientClient, tally
from tests.servers import RabbitServer, RabbitVhosts
from tests.system import running_system

pytestmark = pytest.mark.fault


async def engaged(system: Any, http: httpx.AsyncClient, urls: list[str], console_origin: str | None = None) -> tuple[ResilientClient, ResilientClient, str, dict[str, str]]:
    owner = await owner_session(system, http, "fault")
    _, agent_auth = await new_agent(http, owner, "fault", "alice")
    agent = await ResilientClient(urls, agent_auth["Authorization"].split()[1], console_origin or system.gateway.base_url).start()
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await ResilientClient(urls, system.visitor_token("fault", "visitor-1"), "https://shop.example").start()
    conversation_id = (await customer.op("start", visitor={"name": "Faye"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    return customer, agent, conversation_id, owner


async def chat(customer: ResilientClient, conversation_id: str, bodies: list[str], sent: list[str]) -> None:
    for body in bodies:
        reply = await customer.op("send", key=f"send-{body}", conversation_id=conversation_id, body=body)
        assert reply["t"] == "ack", reply
        sent.append(body)


async def settle(system: Any, http: httpx.AsyncClient, owner: dict[str, str], customer: ResilientClient, agent: ResilientClient, conversation_id: str, sent: list[str], scenario: str) -> None:
    """Wait for everything acked to arrive, then count: nothing lost, nothing twice, anywhere."""
    await eventually(lambda: all(agent.bodies("customer")[b] for b in sent), timeout=90, what="the agent to receive every message")
    report = tally(scenario, sent, agent.bodies("customer"), agent.recovered + customer.recovered)
    assert report.lost == 0 and report.duplicated == 0, report
    echo = tally(f"{scenario} (customer's own copy)", sent, customer.bodies("customer"), customer.recovered)
    assert echo.lost == 0 and echo.duplicated == 0, echo

    async def archived() -> list[str] | None:
        response = await http.get(f"/api/conversations/{conversation_id}/transcript", headers=owner)
        if response.status_code != 200:
            return None
        bodies = [e["data"]["body"] for e in response.json()["events"] if e["type"] == "message.sent"]
        return bodies if set(sent) <= set(bodies) else None

    stored = await eventually(archived, timeout=90, what="history to archive every message")
    history = tally(f"{scenario} (history)", sent, Counter(stored), 0)
    assert history.lost == 0 and history.duplicated == 0, history


async def test_rabbitmq_stopped_and_restarted_mid_conversation(settings: Settings, broker: RabbitServer) -> None:
    async with running_system(settings) as system, httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
        customer, agent, conversation_id, owner = await engaged(system, http, [system.gateway.ws_url])
        sent: list[str] = []
        try:
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            await asyncio.to_thread(broker.ctl, "stop_app")
            during = asyncio.create_task(chat(customer, conversation_id, [f"during-{i}" for i in range(5)], sent))
            await asyncio.sleep(2)  # the outage lasts a while (a fault, not a wait for a condition)
        finally:
            await asyncio.to_thread(broker.ctl, "start_app")
            await asyncio.to_thread(broker.ctl, "await_startup")
        await during
        await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
        await settle(system, http, owner, customer, agent, conversation_id, sent, "rabbitmq restart")
        await customer.stop()
        await agent.stop()


async def test_broker_connections_cut_mid_conversation(settings: Settings, vhosts: RabbitVhosts) -> None:
    vhost = urllib.parse.unquote(settings.amqp_url.rsplit("/", 1)[1])
    async with running_system(settings) as system, httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
        customer, agent, conversation_id, owner = await engaged(system, http, [system.gateway.ws_url])
        sent: list[str] = []
        await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
        async with httpx.AsyncClient(base_url=vhosts.management_url, auth=(vhosts.user, vhosts.password)) as management:
            async def listed() -> list[dict[str, Any]]:
                # The management API learns of connections with its stats interval: poll.
                return [c for c in (await management.get("/api/connections")).json() if c.get("vhost") == vhost]

            connections = await eventually(listed, timeout=30, what="the services' connections in the management API")
            for connection in connections:
                await management.delete(f"/api/connections/{urllib.parse.quote(connection['name'], safe='')}", headers={"X-Reason": "fault test"})
        await chat(customer, conversation_id, [f"after-{i}" for i in range(10)], sent)
        await settle(system, http, owner, customer, agent, conversation_id, sent, f"{len(connections)} broker connections cut")
        await customer.stop()
        await agent.stop()


PUBLIC_URL = "https://support.example"  # both gateways sit behind one public name, as with nginx


def gateway_process(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    """A real gateway process (`relaydesk gateway`) that can be SIGKILLed like a crashed host."""
    port = free_port()
    env = {**os.environ, "RELAYDESK_AMQP_URL": settings.amqp_url, "MONGO_URL": settings.mongo_url or "", "RELAYDESK_MONGO_DB": settings.mongo_db,
           "RELAYDESK_GATEWAY_PORT": str(port), "RELAYDESK_HEALTH_PORT_BASE": str(free_port()), "RELAYDESK_PUBLIC_URL": PUBLIC_URL}
    if settings.stream_url:  # a container's mapped stream port
        env["RELAYDESK_STREAM_URL"] = settings.stream_url
    process = subprocess.Popen([sys.executable, "-m", "relaydesk.cli", "gateway"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


async def healthy(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
            return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_gateway_killed_under_its_clients_they_resume_on_another(settings: Settings) -> None:
    async with running_system(settings) as system, httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
        doomed, doomed_url = gateway_process(system.settings)
        survivor, survivor_url = gateway_process(system.settings)
        try:
            for url in (doomed_url, survivor_url):
                await eventually(lambda url=url: healthy(url), timeout=60, what=f"gateway {url}")
            urls = [doomed_url.replace("http", "ws") + "/ws", survivor_url.replace("http", "ws") + "/ws"]
            customer, agent, conversation_id, owner = await engaged(system, http, urls, console_origin=PUBLIC_URL)
            sent: list[str] = []
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            doomed.send_signal(signal.SIGKILL)  # the host dies: no close frames, sockets reset
            doomed.wait(10)
            await chat(customer, conversation_id, [f"after-{i}" for i in range(10)], sent)
            await settle(system, http, owner, customer, agent, conversation_id, sent, "gateway killed (SIGKILL)")
            assert customer.reconnects >= 1 and agent.reconnects >= 1
            await customer.stop()
            await agent.stop()
        finally:
            for process in (doomed, survivor):
                if process.poll() is None:
                    process.kill()
                    process.wait(10)


async def test_mongodb_unavailable_then_back(settings: Settings, tmp_path: Path) -> None:
    mongo = EmbeddedMongo(str(tmp_path / "mongo")).start()
    try:
        local = settings.model_copy(update={"mongo_url": mongo.url})
        async with running_system(local) as system, httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
            customer, agent, conversation_id, owner = await engaged(system, http, [system.gateway.ws_url])
            sent: list[str] = []
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)
            mongo.stop()
            # Chat goes on without the database: the log is the record, history catches up later.
            await chat(customer, conversation_id, [f"during-{i}" for i in range(5)], sent)
            await eventually(lambda: all(agent.bodies("customer")[b] for b in sent), what="live delivery during the outage")
            await asyncio.to_thread(mongo.start)
            await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
            await settle(system, http, owner, customer, agent, conversation_id, sent, "mongodb outage")
            await customer.stop()
            await agent.stop()
    finally:
        mongo.stop()


async def test_a_poison_event_on_the_log_does_not_stop_anyone(settings: Settings) -> None:
    import aio_pika

    from contracts import topology as names

    async with running_system(settings) as system, httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
        customer, agent, conversation_id, owner = await engaged(system, http, [system.gateway.ws_url])
        sent: list[str] = []
        await chat(customer, conversation_id, [f"before-{i}" for i in range(3)], sent)
        connection = await aio_pika.connect(system.settings.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(names.EVENTS_EXCHANGE)
            await exchange.publish(aio_pika.Message(body=b"\x00not an envelope"), routing_key="fault.poison")
            await exchange.publish(aio_pika.Message(body=b'{"id":"x","type":"no.such_type","v":1}'), routing_key="fault.poison")
            await chat(customer, conversation_id, [f"after-{i}" for i in range(5)], sent)
            await settle(system, http, owner, customer, agent, conversation_id, sent, "poison events on the log")
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
