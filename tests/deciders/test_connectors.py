"""Connector decisions, pure: given events on the log, when a command, then the outcome."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.config import Connector
from connectors.conversations import ConnectorConversations
from connectors.decider import TELEGRAM_SECRET
from connectors.deliverer import hold_reason
from connectors.delivery import DeliveryError
from connectors.messenger import messaging
from connectors.splitting import LIMITS, split_text, utf8_bytes, utf16_units
from connectors.store import Parked
from connectors.wechat import ForcedRefreshBudget, until_quota_reset
from contracts import Envelope
from contracts.envelope import LoggedEvent
from tests.deciders.harness import BOX, command, connectors_desk, event


def tenant_created(plan: str = "free", tenant: str = "acme") -> Envelope:
    data = {"tenant_id": tenant, "name": tenant, "mode": "saas", "plan": plan}
    return event("tenant.created", data, tenant=tenant)


def configured(connector_id: str, tenant: str = "acme", **secrets: str) -> Envelope:
    data = {
        "connector_id": connector_id,
        "platform": "telegram",
        "public_config": {},
        "sealed_config": BOX.seal(secrets or {"bot_token": "123:abc"}),
    }
    return event("connector.configured", data, stream=f"connector:{connector_id}", tenant=tenant)


def configure(connector_id: str, platform: str = "telegram", **fields: Any) -> Envelope:
    data = {"connector_id": connector_id, "platform": platform, **fields}
    return command("connector.configure", data)


def sealed(**secrets: str) -> str:
    return BOX.seal(secrets)


class TestConfigure:
    async def test_a_connector_is_configured_with_its_secrets_sealed(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="123:abc")))
        [made] = desk.published.events
        assert made.type == "connector.configured" and made.stream == "connector:tg1"
        opened = BOX.open(made.data["sealed_config"])
        assert opened["bot_token"] == "123:abc" and set(opened) == {"bot_token", "webhook_secret"}
        assert "123:abc" not in made.model_dump_json()
        assert reply.ok and reply.event_ids == (made.id,)

    async def test_missing_secrets_and_public_fields_are_named(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(
            configure("fb1", "messenger", sealed_secrets=sealed(app_secret="s"))
        )
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "missing: page_id, page_token, verify_token"

    async def test_secrets_that_cannot_be_opened_are_refused(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(configure("tg1", sealed_secrets="not-a-fernet-token"))
        assert desk.types == ["command.rejected"]
        assert reply.message == "sealed_secrets cannot be opened"

    async def test_reconfiguring_keeps_the_secrets_already_set(self) -> None:
        desk = connectors_desk().given(tenant_created(), configured("tg1", bot_token="keep"))
        reply = await desk.when(configure("tg1", public_config={"greeting": "hi"}))
        assert reply.ok
        [made] = desk.published.events
        assert BOX.open(made.data["sealed_config"])["bot_token"] == "keep"

    async def test_another_tenants_connector_id_is_taken(self) -> None:
        desk = connectors_desk().given(configured("tg1", tenant="globex"))
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="x")))
        assert desk.types == ["command.rejected"] and reply.code == "conflict"


class TestPlanLimit:
    async def test_a_plan_with_every_connector_used_refuses_another(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"), configured("tg1"))
        reply = await desk.when(configure("tg2", sealed_secrets=sealed(bot_token="x")))
        assert desk.types == ["command.rejected"] and reply.code == "plan_limit"

    async def test_reconfiguring_a_connector_never_counts_as_another(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"), configured("tg1"))
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="new")))
        assert reply.ok and desk.types == ["connector.configured"]

    async def test_the_next_command_counts_the_connector_just_configured(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"))
        assert (await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="x")))).ok
        reply = await desk.when(configure("tg2", sealed_secrets=sealed(bot_token="y")))
        assert desk.types == ["command.rejected"] and reply.code == "plan_limit"


class TestRemove:
    async def test_a_configured_connector_is_removed(self) -> None:
        desk = connectors_desk().given(tenant_created(), configured("tg1"))
        reply = await desk.when(command("connector.remove", {"connector_id": "tg1"}))
        assert desk.of("connector.removed") == [{"connector_id": "tg1"}] and reply.ok

    async def test_removing_another_tenants_connector_is_not_found(self) -> None:
        desk = connectors_desk().given(configured("tg1", tenant="globex"))
        reply = await desk.when(command("connector.remove", {"connector_id": "tg1"}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"


def configured_as(
    connector_id: str, platform: str, public: dict[str, str], **secrets: str
) -> Envelope:
    data = {
        "connector_id": connector_id,
        "platform": platform,
        "public_config": public,
        "sealed_config": BOX.seal(secrets),
    }
    return event("connector.configured", data, stream=f"connector:{connector_id}", tenant="globex")


class TestWebhookSecret:
    async def test_webhook_mode_without_a_secret_gets_one_generated(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="1:a")))
        assert reply.ok
        secret = BOX.open(desk.published.events[0].data["sealed_config"])["webhook_secret"]
        assert TELEGRAM_SECRET.fullmatch(secret) and len(secret) >= 32

    async def test_polling_mode_needs_no_secret(self) -> None:
        desk = connectors_desk().given(tenant_created())
        polling = configure(
            "tg1", public_config={"mode": "polling"}, sealed_secrets=sealed(bot_token="1:a")
        )
        assert (await desk.when(polling)).ok
        assert BOX.open(desk.published.events[0].data["sealed_config"]) == {"bot_token": "1:a"}

    async def test_a_secret_telegram_would_refuse_is_refused(self) -> None:
        desk = connectors_desk().given(tenant_created())
        bad = sealed(bot_token="1:a", webhook_secret="has spaces/and slashes")
        reply = await desk.when(configure("tg1", sealed_secrets=bad))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message is not None and reply.message.startswith("webhook_secret:")

    async def test_an_unknown_mode_is_refused(self) -> None:
        desk = connectors_desk().given(tenant_created())
        odd = configure(
            "tg1", public_config={"mode": "push"}, sealed_secrets=sealed(bot_token="1:a")
        )
        reply = await desk.when(odd)
        assert desk.types == ["command.rejected"] and reply.message == "mode: webhook or polling"


class TestDuplicateCredentials:
    async def test_a_bot_already_connected_elsewhere_is_refused_even_with_a_new_token(
        self,
    ) -> None:
        desk = connectors_desk().given(
            tenant_created(), configured_as("tgx", "telegram", {}, bot_token="777:old")
        )
        for token in ("777:old", "777:regenerated"):
            reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token=token)))
            assert reply.code == "conflict" and reply.message == "this bot is already connected"
            assert desk.types == ["command.rejected"]

    async def test_another_bot_and_the_same_connector_again_are_fine(self) -> None:
        desk = connectors_desk().given(
            tenant_created(plan="business"), configured("tg1", bot_token="1:a")
        )
        assert (await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="1:b")))).ok
        assert (await desk.when(configure("tg2", sealed_secrets=sealed(bot_token="2:a")))).ok

    async def test_a_page_or_an_account_already_connected_is_refused(self) -> None:
        desk = connectors_desk().given(
            tenant_created(),
            configured_as("fbx", "messenger", {"page_id": "55"}, page_token="t"),
            configured_as("wxx", "wechat", {"app_id": "wx9"}, app_secret="s"),
        )
        page = configure(
            "fb1",
            "messenger",
            public_config={"page_id": "55"},
            sealed_secrets=sealed(app_secret="s", page_token="p", verify_token="v"),
        )
        account = configure(
            "wx1",
            "wechat",
            public_config={"app_id": "wx9", "plaintext_allowed": "true"},
            sealed_secrets=sealed(app_secret="s", token="t"),
        )
        assert (await desk.when(page)).message == "this page is already connected"
        assert desk.types == ["command.rejected"]
        assert (await desk.when(account)).message == "this account (app_id) is already connected"
        assert desk.types == ["command.rejected"]


class TestSplitting:
    def test_a_reply_within_the_limit_is_one_part(self) -> None:
        assert split_text("short", LIMITS["telegram"]) == ["short"]
        assert split_text("", LIMITS["telegram"]) == [""]

    def test_parts_break_between_words_and_keep_every_word_in_order(self) -> None:
        text = " ".join(f"w{i}" for i in range(2000))
        parts = split_text(text, LIMITS["messenger"])
        assert len(parts) == 6 and " ".join(parts) == text
        assert all(utf16_units(p) <= 2000 and not p.startswith(" ") for p in parts)

    def test_a_paragraph_or_line_break_is_preferred_to_a_space(self) -> None:
        text = "a" * 3000 + "\n\n" + "b " * 600
        assert split_text(text, LIMITS["telegram"])[0] == "a" * 3000

    def test_a_word_longer_than_the_limit_is_cut_inside(self) -> None:
        assert split_text("x" * 5000, LIMITS["telegram"]) == ["x" * 4096, "x" * 904]

    def test_limits_are_counted_the_way_each_platform_counts(self) -> None:
        emoji = "😀" * 3000  # 6,000 UTF-16 units, 12,000 UTF-8 bytes
        assert [utf16_units(p) for p in split_text(emoji, LIMITS["telegram"])] == [4096, 1904]
        chinese = "你" * 1000  # 3,000 bytes
        assert [utf8_bytes(p) for p in split_text(chinese, LIMITS["wechat"])] == [2046, 954]


class TestHolding:
    def test_replies_after_a_refused_one_wait_and_others_go_on(self) -> None:
        parked = {"c1": Parked("message", since=10.0, message_id="m1")}
        held = hold_reason(parked, "c1", 11.0)
        assert held is not None and held.permanent and not held.credentials
        assert held.behind == "m1" and held.waits_for == "earlier_reply"
        assert DeliveryError("400 Bad Request", permanent=True).waits_for == "retry"
        assert hold_reason(parked, "c2", 11.0) is None
        assert hold_reason(parked, "c1", 9.0) is None  # queued before it: retried meanwhile

    def test_refused_credentials_hold_every_conversation_of_the_connector(self) -> None:
        held = hold_reason({"c1": Parked("credentials", since=10.0)}, "c2", 1.0)
        assert held is not None and held.credentials and held.waits_for == "credentials"


class TestPlatformRules:
    def test_messenger_answers_within_24_hours_and_tags_only_when_enabled(self) -> None:
        plain = Connector("acme", "fb1", "messenger", {"page_id": "1"})
        tagged = Connector("acme", "fb1", "messenger", {"page_id": "1", "human_agent_tag": "true"})
        now = 1_000_000.0
        assert messaging(plain, now - 3600, now) == {"messaging_type": "RESPONSE"}
        assert messaging(tagged, now - 25 * 3600, now)["tag"] == "HUMAN_AGENT"
        with pytest.raises(DeliveryError) as refused:
            messaging(plain, now - 25 * 3600, now)
        assert refused.value.permanent and not refused.value.credentials

    def test_wechat_quotas_reset_at_midnight_beijing_time(self) -> None:
        assert until_quota_reset(datetime(2026, 12, 2, 15, 30, tzinfo=UTC)) == 30 * 60
        assert until_quota_reset(datetime(2026, 12, 2, 16, 0, tzinfo=UTC)) == 24 * 3600

    def test_wechat_forced_refreshes_are_rationed_30_s_apart_and_20_a_day(self) -> None:
        now = [datetime(2026, 12, 2, 1, 0, tzinfo=UTC)]
        budget = ForcedRefreshBudget(clock=lambda: now[0])
        assert budget.take("wx1") and not budget.take("wx1")
        assert budget.take("wx2")  # per account
        granted = 1
        for _ in range(40):
            now[0] += timedelta(seconds=31)
            granted += budget.take("wx1")
        assert granted == 20
        now[0] = datetime(2026, 12, 2, 16, 0, 1, tzinfo=UTC)  # the next day in Beijing
        assert budget.take("wx1")


class TestConnectorConversations:
    """Which conversations the log follower looks up in its store (the rest are web's)."""

    @staticmethod
    def requested(conversation_id: str, channel: str, tenant: str = "acme") -> LoggedEvent:
        data = {"conversation_id": conversation_id, "channel": channel, "visitor": {"id": "v"}}
        envelope = event("conversation.requested", data, tenant=tenant)
        return LoggedEvent(position=1, envelope=envelope)

    def test_a_conversation_requested_through_a_platform_is_held_a_web_one_is_not(self) -> None:
        conversations = ConnectorConversations()
        for channel in ("telegram", "messenger", "wechat", "web", "api"):
            conversations.apply(self.requested(f"c-{channel}", channel))
        channels = ("telegram", "messenger", "wechat", "web", "api")
        assert {c for c in channels if conversations.holds("acme", f"c-{c}")} == {
            "telegram",
            "messenger",
            "wechat",
        }
        assert not conversations.holds("other", "c-telegram")  # per tenant

    def test_conversations_the_store_holds_are_held_though_the_log_lost_them(self) -> None:
        conversations = ConnectorConversations()
        conversations.load([("acme", "older-than-the-log")])
        assert conversations.holds("acme", "older-than-the-log")


class TestInvalidEventsOnTheLog:
    """The connectors' fold read ``connector.*`` events' fields unchecked: one on the log
    without ``sealed_config`` (or ``connector_id``) raised in the fold, and a reader that
    raises stops following the log. Such an event is skipped (logged), never half-applied,
    and what comes after it is folded."""

    @pytest.mark.parametrize(
        ("type_name", "data"),
        [
            ("connector.configured", {"connector_id": "tg1", "platform": "telegram"}),
            ("connector.configured", {"platform": "telegram", "sealed_config": "x"}),
            ("connector.removed", {}),
            ("connector.paused", {"reason": "x"}),
        ],
        ids=["configured without secrets", "configured without id", "removed", "paused"],
    )
    async def test_an_invalid_connector_event_is_skipped_and_the_next_one_folds(
        self, type_name: str, data: dict[str, Any]
    ) -> None:
        desk = connectors_desk().given(tenant_created(plan="business"))
        invalid = event(type_name, data, stream="connector:tg1")
        desk.given(invalid, configured("tg2", bot_token="7:a"))
        # tg2, folded after the invalid event, holds its bot: another connector may not
        reply = await desk.when(configure("tg3", sealed_secrets=sealed(bot_token="7:a")))
        assert reply.code == "conflict"
