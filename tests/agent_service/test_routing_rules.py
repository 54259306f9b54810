"""Routing rules as pure functions over a state (no broker needed)."""

from datetime import UTC, datetime

from agent_service import hours, routing
from agent_service.state import Conversation, Group, Tenant


def tenant_with(*agent_ids: str, mode: str = "broadcast") -> Tenant:
    tenant = Tenant("acme")
    tenant.settings["routing_mode"] = mode
    for agent_id in agent_ids:
        tenant.agent(agent_id).status = "online"
    return tenant


def chat(
    conversation_id: str = "c1", channel: str = "web", department: str | None = None
) -> Conversation:
    return Conversation(conversation_id, "v1", channel, department, seq=0)


def test_channel_restricted_agents_only_take_their_channels() -> None:
    tenant = tenant_with("web-only", "tg-only", "free")
    tenant.groups["g-web"] = Group("g-web", channels=("web",))
    tenant.groups["g-tg"] = Group("g-tg", channels=("telegram",))
    tenant.agents["web-only"].groups = ("g-web",)
    tenant.agents["tg-only"].groups = ("g-tg",)
    assert routing.choose(tenant, chat(channel="telegram")) == ("free", "tg-only")
    assert routing.choose(tenant, chat(channel="web")) == ("free", "web-only")


def test_unknown_department_limits_nobody_known_one_limits_to_its_groups() -> None:
    tenant = tenant_with("a1", "a2")
    tenant.groups["g"] = Group("g", departments=("sales",))
    tenant.agents["a2"].groups = ("g",)
    assert routing.choose(tenant, chat(department="sales")) == ("a2",)
    assert routing.choose(tenant, chat(department="unknown")) == ("a1", "a2")


def test_room_counts_standing_offers_and_disconnected_agents_are_skipped() -> None:
    tenant = tenant_with("a1", "a2", "a3")
    tenant.agents["a1"].max_chats = 2
    tenant.agents["a1"].active, tenant.agents["a1"].offers = {"x"}, {"y"}
    tenant.agents["a2"].disconnected_at = datetime.now(UTC)
    assert routing.choose(tenant, chat()) == ("a3",)


def test_declined_never_again_timed_out_only_when_nobody_else() -> None:
    tenant = tenant_with("a1", "a2", mode="round_robin")
    conversation = chat()
    conversation.expired_for = {"a1"}
    assert routing.choose(tenant, conversation) == ("a2",)
    conversation.declined_by = {"a2"}
    assert routing.choose(tenant, conversation) == ("a1",)
    conversation.declined_by = {"a1", "a2"}
    assert routing.choose(tenant, conversation) == ()


def test_round_robin_wraps_after_the_last_id() -> None:
    assert routing.next_after(["a1", "a2", "a3"], None) == "a1"
    assert routing.next_after(["a1", "a2", "a3"], "a2") == "a3"
    assert routing.next_after(["a1", "a2", "a3"], "a3") == "a1"
    assert routing.next_after(["a1", "a3"], "a2") == "a3"  # a2 went offline: the next one after it


def test_business_hours_in_the_tenant_timezone() -> None:
    week = {"mon": [["09:00", "17:00"]], "sat": []}
    monday_noon_berlin = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    monday_evening_berlin = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 17:30 in Berlin
    assert hours.is_open(week, "Europe/Berlin", monday_noon_berlin)
    assert not hours.is_open(week, "Europe/Berlin", monday_evening_berlin)
    assert hours.is_open(week, "UTC", monday_evening_berlin)  # 16:30 UTC
    assert not hours.is_open(week, "UTC", datetime(2026, 11, 28, 12, 0, tzinfo=UTC))  # a Saturday
    assert hours.is_open(None, "UTC", monday_evening_berlin)
    assert hours.is_open({"mon": "nonsense"}, "UTC", monday_noon_berlin)  # unreadable: open
