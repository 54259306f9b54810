"""Send API errors in the documented Graph shapes: transient retried, permanent reported once.

Each send's outcome is counted on relaydesk_connector_sends_total (relaydesk/metrics.py).
"""

from prometheus_client import REGISTRY

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import GRAPH_ERRORS, FakeMessenger
from tests.connectors.harness import MessengerDriver
from tests.connectors.helpers import LogWatch, agent_reply


def sends(outcome: str) -> float:
    labels = {"platform": "messenger", "outcome": outcome}
    return REGISTRY.get_sample_value("relaydesk_connector_sends_total", labels) or 0.0


async def _conversation(
    fake: FakeMessenger, service: ConnectorsService, bus: Bus, watch: LogWatch
) -> tuple[MessengerDriver, str]:
    driver = MessengerDriver(fake, service)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("psid-e", "hello")).status_code == 200
    return driver, str(
        (await watch.wait_for("connector.inbound_received"))[0].data["conversation_id"]
    )


async def test_transient_errors_are_retried_then_delivered_once(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver, conversation_id = await _conversation(fake_messenger, connectors, bus, watch)
    counted = {outcome: sends(outcome) for outcome in ("sent", "failed", "deferred")}
    fake_messenger.fail_next = [
        "1200 temporary",
        "2 unexpected",
    ]  # HTTP 400 code 1200, then HTTP 500 code 2
    first = await agent_reply(bus, TENANT, conversation_id, "after two temporary failures")
    await watch.wait_for("connector.outbound_sent", message_id=first)
    assert len(fake_messenger.calls) == 3
    fake_messenger.fail_next = [
        "html 502",
        "613 rate limit",
    ]  # a proxy's non-JSON 502, then throttling
    second = await agent_reply(bus, TENANT, conversation_id, "after a 502 and a rate limit")
    await watch.wait_for("connector.outbound_sent", message_id=second)
    assert len(fake_messenger.calls) == 6
    assert driver.delivered() == ["after two temporary failures", "after a 502 and a rate limit"]
    assert (
        watch.of("connector.outbound_failed") == []
    )  # recovered within the round: nothing to report
    assert len(watch.of("connector.outbound_sent", message_id=first)) == 1
    assert connectors.breaker_state("fb1") == "closed"
    # retries within a round are one send: two sent, nothing failed or deferred
    assert {outcome: sends(outcome) - n for outcome, n in counted.items()} == {
        "sent": 2,
        "failed": 0,
        "deferred": 0,
    }


async def test_permanent_errors_are_reported_once_with_the_reason_and_not_retried(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver, conversation_id = await _conversation(fake_messenger, connectors, bus, watch)
    permanent = ["100 invalid parameter", "551 unavailable", "10 outside window"]
    counted = {outcome: sends(outcome) for outcome in ("sent", "failed")}
    fake_messenger.fail_next = list(permanent)
    failed_ids = [
        await agent_reply(bus, TENANT, conversation_id, f"refused: {name}") for name in permanent
    ]
    after = await agent_reply(bus, TENANT, conversation_id, "the queue goes on")
    await watch.wait_for("connector.outbound_sent", message_id=after)

    assert len(fake_messenger.calls) == len(permanent) + 1  # one call each: none was retried
    assert driver.delivered() == ["the queue goes on"]
    for name, message_id in zip(permanent, failed_ids, strict=True):
        code, message, _, _, subcode = GRAPH_ERRORS[name]
        reports = watch.of("connector.outbound_failed", message_id=message_id)
        assert len(reports) == 1, name
        assert reports[0].data["permanent"] is True
        assert reports[0].data["reason"] == f"{code}/{subcode} {message}"
        assert (
            reports[0].data["platform"] == "messenger"
            and reports[0].data["conversation_id"] == conversation_id
        )
        assert watch.of("connector.outbound_sent", message_id=message_id) == []
    assert (
        connectors.breaker_state("fb1") == "closed"
    )  # the platform answered: not a platform failure
    assert {outcome: sends(outcome) - n for outcome, n in counted.items()} == {
        "sent": 1,
        "failed": len(permanent),
    }
