"""The bus against a real RabbitMQ: topology, confirmed publish, replay, resume, dedupe, RPC."""

import asyncio

import aio_pika
import httpx
import pytest

from contracts import Actor, Envelope
from contracts import topology as names
from contracts.replies import CommandReply
from relaydesk.bus import Bus, LogReader, RemoteError, RequestTimeout
from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.bus.rpc import RpcClient, serve_commands, serve_queries
from relaydesk.bus.topology import declare_command_queue, declare_core, declare_query_queue
from tests.admin.helpers import eventually
from tests.servers import RabbitVhosts


def message_event(n: int, tenant: str = "acme") -> Envelope:
    return Envelope(
        type="message.sent",
        v=2,
        tenant=tenant,
        stream="conv:c1",
        actor=Actor(kind="customer", id="v1"),
        data={
            "conversation_id": "c1",
            "message_id": f"m{n}",
            "body": f"hello {n}",
            "author_kind": "customer",
            "author_id": "v1",
        },
    )


async def read_n(reader: LogReader, n: int, timeout: float = 10) -> list:
    out = []

    async def collect() -> None:
        async for event in reader.events():
            out.append(event)
            if len(out) >= n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def test_topology_declaration_is_idempotent(bus: Bus) -> None:
    channel = await bus.channel()
    await declare_core(channel)
    await declare_core(channel)
    await declare_command_queue(channel, "agent")
    await declare_command_queue(channel, "agent")
    log = await channel.declare_queue(names.LOG_STREAM, passive=True)
    assert log.name == names.LOG_STREAM


async def test_confirmed_publish_then_replay_from_zero_returns_all_in_order(bus: Bus) -> None:
    sent = [message_event(i) for i in range(50)]
    await bus.publish_many(sent)
    async with LogReader(bus, start=0, name="t") as reader:
        got = await read_n(reader, 50)
    assert [e.envelope.id for e in got] == [e.id for e in sent]
    positions = [e.position for e in got]
    assert positions == sorted(positions) and len(set(positions)) == 50


async def test_restarted_reader_resumes_from_stored_offset_without_gaps_or_repeats(
    bus: Bus,
) -> None:
    sent = [message_event(i) for i in range(40)]
    await bus.publish_many(sent)
    async with LogReader(bus, start="first", name="t") as reader:
        first_half = await read_n(reader, 15)
    stored = first_half[-1].position
    async with LogReader(bus, start=stored + 1, name="t") as reader:
        second_half = await read_n(reader, 25)
    ids = [e.envelope.id for e in first_half + second_half]
    assert ids == [e.id for e in sent]


async def test_publish_to_unroutable_exchange_key_still_lands_in_log(bus: Bus) -> None:
    # every key matches "#", so the mandatory flag never fires for events
    event = message_event(1, tenant="other-tenant")
    await bus.publish(event)
    async with LogReader(bus, start="first") as reader:
        [got] = await read_n(reader, 1)
    assert got.envelope == event


async def test_duplicate_event_ids_are_applied_once(bus: Bus) -> None:
    event = message_event(7)
    await bus.publish(event)
    await bus.publish(event)  # a publisher retry after a lost confirm
    await bus.publish(message_event(8))
    applied: dict[str, int] = {}
    async with LogReader(bus, start="first") as reader:
        for logged in await read_n(reader, 3):
            applied.setdefault(logged.envelope.id, logged.position)
    assert len(applied) == 2


async def test_poison_log_entry_is_dead_lettered_with_reason_and_others_flow(bus: Bus) -> None:
    channel = await bus.channel(confirms=True)
    exchange = await channel.get_exchange(names.EVENTS_EXCHANGE)
    await exchange.publish(aio_pika.Message(body=b"{not json"), routing_key="acme.garbage")
    good = message_event(1)
    await bus.publish(good)
    async with LogReader(bus, start="first", name="poison-test") as reader:
        [got] = await read_n(reader, 1)
        assert reader.poison_count == 1
    assert got.envelope.id == good.id
    dead = await channel.declare_queue(names.DEAD_QUEUE, passive=True)
    message = await dead.get(timeout=5, fail=True)
    assert message is not None
    assert "undecodable" in message.headers["x-relaydesk-reason"]
    assert message.headers["x-relaydesk-source"] == "poison-test"


async def test_query_round_trip_and_error(bus: Bus) -> None:
    async def handler(name: str, params: dict) -> object:
        if name == "echo":
            return {"echo": params["x"]}
        raise RemoteError("not_found", "no such query")

    await serve_queries(bus, "history", handler)
    client = RpcClient(bus)
    assert await client.query("history", "echo", {"x": 3}) == {"echo": 3}
    with pytest.raises(RemoteError) as err:
        await client.query("history", "nope", {})
    assert err.value.code == "not_found"


async def test_query_without_a_server_times_out(bus: Bus) -> None:
    client = RpcClient(bus)
    with pytest.raises(RequestTimeout):
        await client.query("nobody-home", "x", {}, timeout=0.5)


async def test_command_round_trip_and_invalid_command_dead_lettered(bus: Bus) -> None:
    seen: list[str] = []

    async def decide(envelope: Envelope) -> CommandReply:
        from contracts import parse_command_data

        parse_command_data(envelope)
        seen.append(envelope.id)
        return CommandReply(ok=True, event_ids=("e1",))

    await serve_commands(bus, "agent", decide)
    client = RpcClient(bus)
    good = Envelope(
        type="conversation.accept",
        tenant="acme",
        stream="conv:c1",
        actor=Actor(kind="agent", id="a1"),
        data={"conversation_id": "c1", "agent_id": "a1"},
    )
    reply = await client.command("agent", good)
    assert reply.ok and seen == [good.id]
    bad = Envelope(
        type="conversation.accept",
        tenant="acme",
        stream="conv:c1",
        actor=Actor(kind="agent", id="a1"),
        data={"conversation_id": "c1"},
    )
    reply = await client.command("agent", bad)
    assert not reply.ok and reply.code == "invalid_payload"
    channel = await bus.channel()
    dead = await channel.declare_queue(names.DEAD_QUEUE, passive=True)
    message = await dead.get(timeout=5, fail=True)
    assert "invalid_payload" in message.headers["x-relaydesk-reason"]


async def test_catch_up_folds_everything_published_before_start(bus: Bus) -> None:
    from relaydesk.bus.catch_up import catch_up

    before = [message_event(i) for i in range(30)]
    await bus.publish_many(before)
    folded: list[str] = []

    async def apply(batch: list) -> None:
        folded.extend(e.envelope.id for e in batch if e.envelope.type == "message.sent")

    async with LogReader(bus, start="first") as reader:
        position = await catch_up(bus, reader, apply, service="t")
    assert folded == [e.id for e in before]
    assert position >= 30


async def test_a_catch_up_under_way_says_how_far_it_has_folded(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `relaydesk up` gave up on a system whose log had grown long while billing and
    # connectors were still folding it, steadily: nothing said they were moving on.
    from relaydesk.bus import catch_up as module

    monkeypatch.setattr(module, "HEAD_AFTER_S", 0.0)  # look the head up at once
    before = [message_event(i) for i in range(30)]
    await bus.publish_many(before)
    first_batch = asyncio.Event()
    go_on = asyncio.Event()
    seen: list[module.CatchUpProgress] = []

    async def apply(batch: list) -> None:
        if not first_batch.is_set():
            first_batch.set()
            await go_on.wait()  # held: the catch-up is under way

    async with LogReader(bus, start="first", prefetch=5) as reader:
        folding = asyncio.create_task(module.catch_up(bus, reader, apply, service="slow"))
        await first_batch.wait()
        progress = module.CATCHING_UP["slow"]
        await eventually(lambda: progress.head is not None)
        seen.append(module.CatchUpProgress(progress.position, progress.head))
        go_on.set()
        position = await folding
    assert seen[0].position == -1 and seen[0].head is not None and seen[0].head >= 29
    assert progress.position == position and "slow" not in module.CATCHING_UP


async def test_query_queue_of_the_other_setup_is_replaced_and_queries_flow(
    bus: Bus, vhosts: RabbitVhosts
) -> None:
    # A system that moves from one node to a cluster (or back) finds the other queue type.
    channel = await bus.channel()
    await declare_query_queue(channel, "moved", replicated=False)
    await declare_query_queue(channel, "moved", replicated=True)
    arguments = await _queue_arguments(vhosts, bus, names.query_queue("moved"))
    assert arguments["x-queue-type"] == "quorum"

    async def handler(name: str, params: dict[str, object]) -> dict[str, object]:
        return {"echo": params}

    await serve_queries(bus, "moved", handler)
    assert await RpcClient(bus).query("moved", "q", {"a": 1}) == {"echo": {"a": 1}}


def test_broker_urls_name_every_node_in_order() -> None:
    endpoint = StreamEndpoint.from_urls(
        "amqp://u:p@a:5672/v,amqp://u:p@b:5672/v",
        "rabbitmq-stream://u:p@a:5552/v, rabbitmq-stream://u:p@b:5553/v",
    )
    assert endpoint.addresses == (("a", 5552), ("b", 5553))
    assert [endpoint.address(n) for n in range(3)] == [("a", 5552), ("b", 5553), ("a", 5552)]
    assert (endpoint.username, endpoint.password, endpoint.vhost) == ("u", "p", "v")
    single = StreamEndpoint.from_urls("amqp://u:p@a:5672/v")
    assert single.addresses == (("a", 5552),)
    assert single.client_options("n", _never_closed)["load_balancer_mode"] is True
    assert endpoint.client_options("n", _never_closed)["load_balancer_mode"] is False


async def _never_closed(_: object) -> None:
    raise AssertionError("not connected in this test")


async def _queue_arguments(vhosts: RabbitVhosts, bus: Bus, queue: str) -> dict[str, object]:
    """The queue's arguments, from the management API of the test's broker."""
    vhost = bus.amqp_url.rsplit("/", 1)[1]  # already quoted in the URL
    async with httpx.AsyncClient(auth=(vhosts.user, vhosts.password)) as http:
        response = await http.get(f"{vhosts.management_url}/api/queues/{vhost}/{queue}")
    response.raise_for_status()
    return dict(response.json()["arguments"])
