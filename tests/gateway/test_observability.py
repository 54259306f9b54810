"""Metrics, access logs and traces, read off a real conversation on one shared running system.

The metrics are read from prometheus_client's registry in this process (where the gateway
and the services run); a delta is compared with what the conversation put on the log, as
seen by a supervisor's socket. The access log is captured as structured events; traces go
to OpenTelemetry's in-memory exporter while one test runs.
"""

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from history_service.service import HistoryService
from relaydesk.tracing import disable_tracing, enable_tracing, tracing_enabled
from tests.admin.helpers import eventually
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROUTING = ("offered", "offer_declined", "accepted", "transferred")
EVENT_OF = {
    "offered": "conversation.offered",
    "offer_declined": "conversation.offer_declined",
    "accepted": "conversation.accepted",
    "transferred": "conversation.transferred",
}


def value(metric: str, /, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def snapshot() -> dict[str, float]:
    """Every sample of relaydesk's metrics, keyed by name and labels."""
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for metric in REGISTRY.collect()
        if metric.name.startswith("relaydesk_")
        for sample in metric.samples
    }


def history_settled(history: HistoryService, after: int = -1) -> tuple[int, float] | None:
    """(position, events archived) once history applied all it read, up to ``after`` at least:
    its reader's position is set as a batch is handed out, the batch size observed once it is
    applied."""
    read = value("relaydesk_log_reader_position", service="history", reader="history")
    applied = history.position
    if applied is None or applied != read or applied < after:
        return None
    return applied, value("relaydesk_history_batch_events_sum")


@dataclass
class Shared:
    system: RunningSystem
    http: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[Shared]:
    async with (
        shared_system(vhosts, mongo_server) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        yield Shared(system, http)


async def test_a_conversation_moves_each_metric_by_what_it_put_on_the_log(
    shared: Shared,
) -> None:
    system, url = shared.system, shared.system.gateway.ws_url
    sue = await Client.connect(url, system.agent_token("metrics", "sue", role="supervisor"))
    ann = await Client.connect(url, system.agent_token("metrics", "ann", name="Ann"))
    carol = await Client.connect(url, system.agent_token("metrics", "carol", name="Carol"))
    assert (await ann.op("status", status="online"))["t"] == "ack"
    sockets = {kind: value("relaydesk_websocket_connections", kind=kind) for kind in ("agent",)}
    before = {d: value("relaydesk_routing_decisions_total", decision=d) for d in ROUTING}
    messages_in = value("relaydesk_messages_total", channel="web", direction="in")
    messages_out = value("relaydesk_messages_total", channel="web", direction="out")
    published = value("relaydesk_events_published_total", service="gateway")
    confirms = value("relaydesk_publish_confirm_seconds_count", service="gateway")
    request = {"kind": "command", "target": "agent", "name": "conversation.request"}
    sent_requests = value("relaydesk_requests_total", **request, outcome="ok")
    timed_requests = value("relaydesk_request_seconds_count", **request)
    decided = value(
        "relaydesk_commands_decided_total",
        service="agent",
        command="conversation.request",
        outcome="accepted",
    )
    history = next(s for s in system.services if isinstance(s, HistoryService))
    history_from, history_events = await eventually(lambda: history_settled(history))

    customer = await Client.connect(url, system.visitor_token("metrics", "v1"))
    assert value("relaydesk_websocket_connections", kind="customer") >= 1
    assert value("relaydesk_websocket_connections", kind="agent") == sockets["agent"]
    conversation_id = (await customer.op("start"))["conversation_id"]
    await ann.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await ann.op("decline", conversation_id=conversation_id))["t"] == "ack"
    assert (await carol.op("status", status="online"))["t"] == "ack"
    await carol.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await carol.op("accept", conversation_id=conversation_id))["t"] == "ack"
    for body in ("hello", "are you there?"):
        assert (await customer.op("send", conversation_id=conversation_id, body=body))["t"] == "ack"
    assert (await carol.op("send", conversation_id=conversation_id, body="yes"))["t"] == "ack"
    assert (await carol.op("transfer", conversation_id=conversation_id, to_agent_id="ann"))[
        "t"
    ] == "ack"
    await ann.wait_event(
        "conversation.offered", conversation_id=conversation_id, transfer_from="carol"
    )
    assert (await ann.op("accept", conversation_id=conversation_id))["t"] == "ack"
    last = await sue.wait_event("conversation.transferred", conversation_id=conversation_id)

    # Routing: each counter moved by the number of its events on the log, and those are
    # what the story says: three offers (Ann, Carol, the transfer to Ann), one decline, one
    # accept (Carol's; Ann taking the transfer is the transfer).
    on_log = Counter(
        frame["event"]["type"]
        for frame in sue.events()
        if frame["event"]["data"].get("conversation_id") == conversation_id
    )
    moved = {d: value("relaydesk_routing_decisions_total", decision=d) - before[d] for d in ROUTING}
    assert moved == {d: on_log[EVENT_OF[d]] for d in ROUTING}
    assert moved == {"offered": 3, "offer_declined": 1, "accepted": 1, "transferred": 1}
    # Messages by channel and direction; the gateway appended exactly those three events.
    assert value("relaydesk_messages_total", channel="web", direction="in") - messages_in == 2
    assert value("relaydesk_messages_total", channel="web", direction="out") - messages_out == 1
    assert value("relaydesk_events_published_total", service="gateway") - published == 3
    assert value("relaydesk_publish_confirm_seconds_count", service="gateway") - confirms == 3
    # The start was one command to the agent service: sent, timed and decided once.
    assert value("relaydesk_requests_total", **request, outcome="ok") - sent_requests == 1
    assert value("relaydesk_request_seconds_count", **request) - timed_requests == 1
    assert (
        value(
            "relaydesk_commands_decided_total",
            service="agent",
            command="conversation.request",
            outcome="accepted",
        )
        - decided
        == 1
    )
    # Readers: the gateway's tail has handed out the last event; history archives every
    # entry once, so its batch sizes add up to the distance its position moved.
    tail = value("relaydesk_log_reader_position", service="gateway", reader="gateway-tail")
    assert tail >= last["position"]

    history_to, history_events_to = await eventually(
        lambda: history_settled(history, after=last["position"]), what="history archived it all"
    )
    assert history_events_to - history_events == history_to - history_from
    assert value("relaydesk_log_reader_lag_seconds", service="history", reader="history") >= 0

    await customer.close()
    await eventually(
        lambda: value("relaydesk_websocket_connections", kind="customer") == 0,
        what="the visitor's socket counted closed",
    )
    for client in (sue, ann, carol):
        await client.close()


async def test_a_query_is_timed_on_both_sides_and_logged_without_its_token(
    shared: Shared,
) -> None:
    system, http = shared.system, shared.http
    token = system.visitor_token("logs", "v9")
    customer = await Client.connect(system.gateway.ws_url, token)
    conversation_id = (await customer.op("start"))["conversation_id"]
    path = f"/api/conversations/{conversation_id}/transcript"
    auth = {"Authorization": f"Bearer {token}"}

    async def archived() -> bool:
        return (await http.get(path, headers=auth)).status_code == 200

    await eventually(archived, what="the conversation in history")
    asked = {"kind": "query", "target": "history", "name": "transcript"}
    sent = value("relaydesk_request_seconds_count", **asked)
    answered = value("relaydesk_query_answer_seconds_count", service="history", query="transcript")
    route = "/api/conversations/{conversation_id}/transcript"
    served = value("relaydesk_http_requests_total", method="GET", route=route, status="200")

    with capture_logs() as logs:
        answer = await http.get(
            path,
            headers={**auth, "X-Request-Id": "req-42"},
            params={"token": token},  # a token in the query string must not reach the log
        )
        missing = await http.get(f"/no/such/{conversation_id}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "req-42"
    assert missing.status_code == 404
    assert missing.headers["x-request-id"]  # a new correlation id when the client sent none

    lines = [line for line in logs if line["event"] == "http_request"]
    assert [(line["route"], line["status"]) for line in lines] == [(route, 200), ("unmatched", 404)]
    served_line, missing_line = lines
    assert served_line["method"] == "GET"
    assert served_line["tenant"] == "logs"
    assert served_line["correlation_id"] == "req-42"
    assert isinstance(served_line["duration_ms"], float) and served_line["duration_ms"] >= 0
    assert missing_line["tenant"] is None
    assert missing_line["correlation_id"] == missing.headers["x-request-id"]
    assert token not in str(logs) and conversation_id not in str(lines)

    assert value("relaydesk_request_seconds_count", **asked) - sent == 1
    assert (
        value(
            "relaydesk_query_answer_seconds_count",
            service="history",
            query="transcript",
        )
        - answered
        == 1
    )
    assert (
        value("relaydesk_http_requests_total", method="GET", route=route, status="200") - served
        == 1
    )
    assert "relaydesk_http_request_seconds_bucket" in str(snapshot())
    await customer.close()


async def test_one_chat_message_is_one_trace_from_the_gateway_through_the_services(
    shared: Shared,
) -> None:
    exporter = InMemorySpanExporter()
    enable_tracing("tests", exporter, batch=False)
    try:
        customer = await Client.connect(
            shared.system.gateway.ws_url, shared.system.visitor_token("traced", "v1")
        )
        conversation_id = (await customer.op("start"))["conversation_id"]
        sent = await customer.op("send", conversation_id=conversation_id, body="hi")
        assert sent["t"] == "ack", sent

        def spans(name: str) -> list[ReadableSpan]:
            return [s for s in exporter.get_finished_spans() if s.name == name]

        [start] = spans("ws start")
        [send] = spans("ws send")
        assert start.context.trace_id != send.context.trace_id  # two actions, two traces
        # the command the gateway sent is decided in the agent service, inside its trace
        [decided] = spans("command conversation.request")
        assert decided.context.trace_id == start.context.trace_id
        assert decided.parent is not None
        # the message the gateway appended to the log is archived by history, inside its trace
        await eventually(
            lambda: any(
                s.context.trace_id == send.context.trace_id for s in spans("history archive")
            ),
            what="history's span in the message's trace",
        )
        await customer.close()
    finally:
        disable_tracing()
    assert not tracing_enabled()
