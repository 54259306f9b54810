"""Past one machine: a three-node RabbitMQ cluster and two gateways, a node and a gateway lost.

The cluster is real (Debian's RabbitMQ, three nodes that form one cluster as they boot,
tools/cluster.py); the log stream and the command and query queues are replicated on all
three. A customer and an agent chat through two gateway processes while the node leading the
log is SIGKILLed, then the gateway both clients are on: every acked message reaches the agent,
the customer's own copy and the history exactly once, every socket resumes, and the time
until the first acked send after each fault is reported (docs/performance.md).
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from contracts import topology as names
from relaydesk.settings import Settings
from tests.fault.conversation import chat, engaged, gateway_client, settle
from tests.fault.processes import PUBLIC_URL, gateway_pair
from tests.keys import test_secrets
from tests.servers import MongoServer
from tests.system import running_system
from tools.cluster import LocalRabbitCluster

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRabbitCluster]:
    with LocalRabbitCluster(3) as running:
        yield running


@pytest.fixture
async def clustered(
    cluster: LocalRabbitCluster, mongo_server: MongoServer
) -> AsyncIterator[Settings]:
    yield Settings(
        amqp_url=cluster.amqp_url(),
        stream_url=cluster.stream_url(),
        mongo_url=mongo_server.url,
        mongo_db=f"t_{uuid.uuid4().hex[:12]}",
        publish_timeout_s=20.0,
        **test_secrets(),
    )


async def test_a_node_then_a_gateway_killed_nothing_lost_or_doubled(
    cluster: LocalRabbitCluster, clustered: Settings, record_property: Callable[[str, object], None]
) -> None:
    # Replicated on every node: the log stream, the command and the query queues.
    async with running_system(clustered) as system:
        replicas = await asyncio.to_thread(cluster.members_of, names.LOG_STREAM)
        assert len(replicas) == 3, replicas
        for queue in (names.command_queue("agent"), names.query_queue("agent")):
            assert len(await asyncio.to_thread(cluster.members_of, queue)) == 3, queue
        async with (
            gateway_pair(system.settings) as gateways,
            gateway_client(gateways.survivor_url, timeout=30) as http,
        ):
            customer, agent, conversation_id, owner = await engaged(
                system, http, gateways.ws_urls, console_origin=PUBLIC_URL
            )
            sent: list[str] = []
            await chat(customer, conversation_id, [f"before-{i}" for i in range(5)], sent)

            leader = await asyncio.to_thread(cluster.leader_of, names.LOG_STREAM)
            recovery = {}
            for fault, strike in (
                ("log leader node", lambda: cluster.kill(leader)),
                ("gateway", gateways.kill_doomed),
            ):
                killed_at = await asyncio.to_thread(strike)
                bodies = [f"after {fault} {i}" for i in range(10)]
                await chat(customer, conversation_id, bodies[:1], sent)
                recovery[fault] = time.monotonic() - killed_at
                await chat(customer, conversation_id, bodies[1:], sent)

            await settle(
                system,
                http,
                owner,
                customer,
                agent,
                conversation_id,
                sent,
                f"cluster: {leader.name} (log leader) and a gateway killed",
            )
            assert customer.reconnects >= 1 and agent.reconnects >= 1
            for fault, seconds in recovery.items():
                record_property(f"first ack after {fault} killed (s)", round(seconds, 2))
            print(
                "cluster recovery, first ack after the kill: "
                + ", ".join(f"{fault} {seconds:.2f}s" for fault, seconds in recovery.items())
            )
            await customer.stop()
            await agent.stop()
