"""The behaviour every connector owes, run once per platform (subclassed in test_platforms.py)."""

import pytest

from tests.connectors.helpers import LogWatch, agent_reply, eventually

TENANT = "acme"


class ConnectorContract:
    """Subclasses provide a ``driver`` fixture (see harness.py)."""

    async def _open_conversation(self, driver, watch: LogWatch, user: str = "4242") -> str:  # type: ignore[no-untyped-def]
        assert (await driver.setup(watch._bus, TENANT)).ok
        response = await driver.send(user, "hello from the platform ä/✓")
        assert response.status_code == 200
        received = await watch.wait_for("connector.inbound_received", platform=driver.platform)
        return str(received[-1].data["conversation_id"])

    async def test_round_trip(self, driver, watch: LogWatch, bus) -> None:  # type: ignore[no-untyped-def]
        conversation_id = await self._open_conversation(driver, watch)
        requested = await watch.wait_for("conversation.requested", conversation_id=conversation_id)
        assert requested[0].data["channel"] == driver.platform
        customer = await watch.wait_for(
            "message.sent", conversation_id=conversation_id, author_kind="customer"
        )
        assert customer[0].data["body"] == "hello from the platform ä/✓"
        assert customer[0].data["author_id"].startswith(f"{driver.platform}:")

        message_id = await agent_reply(bus, TENANT, conversation_id, "hi, how can I help?")
        await eventually(
            lambda: "hi, how can I help?" in driver.delivered(), what="platform received the reply"
        )
        sent = await watch.wait_for("connector.outbound_sent", message_id=message_id)
        assert sent[0].data["conversation_id"] == conversation_id

    async def test_platform_resend_gives_one_message(self, driver, watch: LogWatch) -> None:  # type: ignore[no-untyped-def]
        conversation_id = await self._open_conversation(driver, watch)
        assert (await driver.resend_last()).status_code == 200
        assert (await driver.send("4242", "second")).status_code == 200
        await watch.wait_for("message.sent", conversation_id=conversation_id, body="second")
        first = watch.of("message.sent", body="hello from the platform ä/✓")
        assert len({e.id for e in first}) == 1 and len(first) == 1
        assert len(watch.of("conversation.requested", conversation_id=conversation_id)) == 1

    async def test_forged_signature_rejected_and_nothing_published(
        self, driver, watch: LogWatch
    ) -> None:  # type: ignore[no-untyped-def]
        assert (await driver.setup(watch._bus, TENANT)).ok
        response = await driver.forge("666", "forged text")
        assert response.status_code == 403
        assert (await driver.send("4242", "genuine")).status_code == 200
        await watch.wait_for("message.sent", body="genuine")
        assert watch.of("message.sent", body="forged text") == []
        assert len(watch.of("connector.inbound_received")) == 1

    async def test_platform_down_then_back_delivers_queued_replies_once(
        self, driver, watch: LogWatch, bus
    ) -> None:  # type: ignore[no-untyped-def]
        conversation_id = await self._open_conversation(driver, watch)
        await driver.set_down(True)
        first = await agent_reply(bus, TENANT, conversation_id, "queued one")
        second = await agent_reply(bus, TENANT, conversation_id, "queued two")
        failed = await watch.wait_for("connector.outbound_failed", message_id=first, timeout=15)
        assert failed[0].data["permanent"] is False
        assert driver.delivered() == []
        await driver.set_down(False)
        await watch.wait_for("connector.outbound_sent", message_id=second, timeout=20)
        assert driver.delivered() == ["queued one", "queued two"]
        assert len(watch.of("connector.outbound_sent", message_id=first)) == 1


@pytest.fixture
def tenant() -> str:
    return TENANT
