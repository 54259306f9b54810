"""Send API errors in the documented Graph shapes: transient retried, permanent reported once."""

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import GRAPH_ERRORS, FakeMessenger
from tests.connectors.harness import MessengerDriver
from tests.connectors.helpers import LogWatch, agent_reply


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


async def test_permanent_errors_are_reported_once_with_the_reason_and_not_retried(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    """Each refused reply is parked (kept for the agent's retry) with the replies behind it in
    its conversation; other conversations go on."""
    driver, conversation_id = await _conversation(fake_messenger, connectors, bus, watch)
    permanent = ["100 invalid parameter", "551 unavailable", "10 outside window"]
    ids = {}
    for n, name in enumerate(permanent):
        assert (await driver.send(f"psid-p{n}", f"hello {n}")).status_code == 200
        opened = (await watch.wait_for("message.sent", body=f"hello {n}"))[0]
        ids[name] = opened.data["conversation_id"]
    fake_messenger.fail_next = list(permanent)
    failed_ids = [
        await agent_reply(bus, TENANT, ids[name], f"refused: {name}") for name in permanent
    ]
    held = await agent_reply(bus, TENANT, ids[permanent[0]], "waits behind the refused one")
    after = await agent_reply(bus, TENANT, conversation_id, "the queue goes on")
    await watch.wait_for("connector.outbound_sent", message_id=after)
    held_report = await watch.wait_for("connector.outbound_failed", message_id=held)

    assert len(fake_messenger.calls) == len(permanent) + 1  # one call each: none was retried
    assert driver.delivered() == ["the queue goes on"]
    for name, message_id in zip(permanent, failed_ids, strict=True):
        code, message, _, _, subcode = GRAPH_ERRORS[name]
        reports = watch.of("connector.outbound_failed", message_id=message_id)
        assert len(reports) == 1, name
        assert reports[0].data["permanent"] is True and reports[0].data["parked"] is True
        assert reports[0].data["reason"] == f"{code}/{subcode} {message}"
        assert (
            reports[0].data["platform"] == "messenger"
            and reports[0].data["conversation_id"] == ids[name]
        )
        assert watch.of("connector.outbound_sent", message_id=message_id) == []
    assert held_report[0].data["parked"] is True and held_report[0].data["reason"].startswith(
        "held"
    )
    assert (
        connectors.breaker_state("fb1") == "closed"
    )  # the platform answered: not a platform failure
