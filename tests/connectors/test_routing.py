"""Each reply to the chat its conversation lives in, whole (split into ordered parts), parked
instead of dropped when a platform refuses it, and Telegram webhooks registered by the service.

The module shares one running system (tests/connectors/world.py); each test has its own
tenant and its own bots."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from connectors.inbound import GROUP_CHAT_TOPIC
from connectors.store import ConnectorStore
from contracts.envelope import Actor, Envelope
from relaydesk.bus.rpc import RpcClient
from relaydesk.store import database, make_client
from tests.connectors.conftest import PUBLIC_URL
from tests.connectors.fakes.messenger import GRAPH_ERRORS
from tests.connectors.harness import configure, remove
from tests.connectors.helpers import agent_message, agent_reply, eventually, eventually_async
from tests.connectors.world import SHARED_TENANT, World, shared_world
from tests.servers import MongoServer, RabbitVhosts

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.shared_service]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[World]:
    async with shared_world(vhosts, mongo_server, QUIET, connector_breaker_open_s=0.2) as running:
        yield running


async def telegram_says(
    world: World,
    connector_id: str,
    user: int,
    text: str,
    *,
    group: int | None = None,
    topic: int | None = None,
) -> str:
    """A Telegram update through the connector's webhook; the conversation it landed in."""
    update = world.fakes.telegram.update(user, text, group=group, topic=topic)
    url = f"http://127.0.0.1:{world.service.port}/webhooks/telegram/{connector_id}"
    response = await world.fakes.telegram.post_webhook(url, update, "s3cret_" + connector_id)
    assert response.status_code == 200, response.text
    sent = await world.watch.wait_for("message.sent", body=text, author_kind="customer")
    return str(sent[0].data["conversation_id"])


def bot_id(token: str) -> int:
    return int(token.split(":")[0])


# the tests' tenants: their users get the agents' replies only (no greeting or offline line)
QUIET = (
    "two-bots",
    "two-pages",
    "group-private",
    "long-replies",
    "parked-credentials",
    "webhook-setup",
    "legacy-keys",
    "lost-answers",
    "until-closed",
    "paused-bot",
    "removed-first",
    "removed-next",
    "one-app",
    "spaced",
    "group-names",
    "edit-old",
    "upgraded",
)


def texts(sent: list[dict[str, Any]], chat_id: int) -> list[str]:
    return [m["text"] for m in sent if m["chat_id"] == chat_id]


# --- 1, 2: a conversation per connector and chat ---------------------------------------------


async def test_two_bots_one_user_each_conversation_gets_its_replies(world: World) -> None:
    tenant = "two-bots"
    bot_a = await world.telegram(tenant, "tg-a")
    bot_b = await world.telegram(tenant, "tg-b")
    first = await telegram_says(world, "tg-a", 88, "to bot A")
    second = await telegram_says(world, "tg-b", 88, "to bot B")
    third = await telegram_says(world, "tg-a", 88, "to bot A again")
    assert first == third != second  # one conversation per bot: A's goes on

    to_a = await agent_reply(world.bus, tenant, first, "answer from A's desk")
    to_b = await agent_reply(world.bus, tenant, second, "answer from B's desk")
    await world.watch.wait_for("connector.outbound_sent", message_id=to_a)
    await world.watch.wait_for("connector.outbound_sent", message_id=to_b)
    by_bot = world.fakes.telegram.sent_by_bot
    assert texts(by_bot[bot_id(bot_a)], 88) == ["answer from A's desk"]
    assert texts(by_bot[bot_id(bot_b)], 88) == ["answer from B's desk"]


async def test_a_private_reply_goes_to_the_private_chat_and_a_group_reply_to_the_group(
    world: World,
) -> None:
    tenant = "group-private"
    token = await world.telegram(tenant, "tg-g")
    in_group = await telegram_says(world, "tg-g", 90, "hello from the group", group=-100777)
    private = await telegram_says(world, "tg-g", 90, "my order number is 12345")
    in_topic = await telegram_says(
        world, "tg-g", 90, "in the billing topic", group=-100777, topic=5
    )
    assert len({in_group, private, in_topic}) == 3

    secret = await agent_reply(world.bus, tenant, private, "order 12345 ships today")
    public = await agent_reply(world.bus, tenant, in_group, "welcome, everyone")
    billing = await agent_reply(world.bus, tenant, in_topic, "billing answers here")
    for message_id in (secret, public, billing):
        await world.watch.wait_for("connector.outbound_sent", message_id=message_id)
    sent = world.fakes.telegram.sent_by_bot[bot_id(token)]
    assert texts(sent, 90) == ["order 12345 ships today"]
    assert [(m["text"], m.get("message_thread_id")) for m in sent if m["chat_id"] < 0] == [
        ("welcome, everyone", None),
        ("billing answers here", 5),
    ]


async def test_each_group_members_message_carries_their_name(world: World) -> None:
    """Members of a Telegram group share one conversation: the agent told them apart by
    author_id only (the console labelled every one "Visitor")."""
    await world.telegram("group-names", "tg-names")
    url = f"http://127.0.0.1:{world.service.port}/webhooks/telegram/tg-names"
    fake = world.fakes.telegram
    for user, name, text in ((501, "Gus", "we both need help"), (502, "Hal", "yes, both of us")):
        update = fake.update(user, text, first_name=name, group=-100501)
        assert (await fake.post_webhook(url, update, "s3cret_tg-names")).status_code == 200
    said = [
        (await world.watch.wait_for("message.sent", body=text))[0].data
        for text in ("we both need help", "yes, both of us")
    ]
    assert [(d["author_id"], d.get("author_name")) for d in said] == [
        ("telegram:501", "Gus"),
        ("telegram:502", "Hal"),
    ]
    assert said[0]["conversation_id"] == said[1]["conversation_id"]
    # The conversation is the group's (a reply reaches every member): named after the group
    # and marked so; it was named after the first writer, like a private chat with him.
    [requested] = [
        e
        for e in world.watch.of("conversation.requested")
        if e.data["conversation_id"] == said[0]["conversation_id"]
    ]
    assert requested.data["visitor"]["name"] == "Customers"
    assert requested.data["topic"] == GROUP_CHAT_TOPIC


async def messenger_page(world: World, tenant: str, page: str) -> None:
    """Connector ``fb-{page}`` for another page of the fake's one app (its app secret)."""
    fake = world.fakes.messenger
    fake.add_page(page, f"token-{page}")
    secrets = {"app_secret": fake.app_secret, "page_token": f"token-{page}"}
    reply = await configure(
        world.bus,
        world.service.box,
        tenant,
        f"fb-{page}",
        "messenger",
        {"page_id": page},
        {**secrets, "verify_token": "v"},
    )
    assert reply.ok, reply


async def test_two_pages_of_one_tenant_each_answer_their_own_chats(world: World) -> None:
    tenant, fake = "two-pages", world.fakes.messenger
    base = f"http://127.0.0.1:{world.service.port}/webhooks/messenger"
    conversations = {}
    for page in ("7001", "7002"):
        await messenger_page(world, tenant, page)
        note = fake.notification("psid-both", f"hello page {page}", page_id=page)
        assert (await fake.post_webhook(f"{base}/fb-{page}", note)).status_code == 200
        said = await world.watch.wait_for("message.sent", body=f"hello page {page}")
        conversations[page] = said[0].data["conversation_id"]
    assert conversations["7001"] != conversations["7002"]
    for page, conversation in conversations.items():
        sent = await agent_reply(world.bus, tenant, conversation, f"answer from {page}")
        await world.watch.wait_for("connector.outbound_sent", message_id=sent)
    for page in ("7001", "7002"):
        got = [m["message"]["text"] for m in fake.sent_by_page[page] if "message" in m]
        assert got == [f"answer from {page}"]


async def test_meta_posts_every_page_of_an_app_to_one_url_and_each_entry_goes_to_its_page(
    world: World,
) -> None:
    """Meta calls one URL per app for all its pages: an entry for a sibling page posted to
    this page's URL used to be taken as this page's (its conversation, its token)."""
    tenant, fake = "one-app", world.fakes.messenger
    base = f"http://127.0.0.1:{world.service.port}/webhooks/messenger"
    for page in ("7101", "7102"):
        await messenger_page(world, tenant, page)
    # Another tenant's page in the same app (the shared page signs with the same app secret):
    # never taken in through this tenant's URL.
    stranger = fake.notification("psid-app", "to a page of another tenant", page_id=fake.page_id)
    assert (await fake.post_webhook(f"{base}/fb-7101", stranger)).status_code == 200
    sibling = fake.notification("psid-app", "to the sibling page", page_id="7102")
    assert (await fake.post_webhook(f"{base}/fb-7101", sibling)).status_code == 200
    said = await world.watch.wait_for("message.sent", body="to the sibling page")
    assert world.watch.of("message.sent", body="to a page of another tenant") == []

    conversation = str(said[0].data["conversation_id"])
    requested = await world.watch.wait_for("conversation.requested", conversation_id=conversation)
    assert requested[0].tenant == tenant
    answer = await agent_reply(world.bus, tenant, conversation, "answer from the sibling page")
    await world.watch.wait_for("connector.outbound_sent", message_id=answer)
    assert [m["message"]["text"] for m in fake.sent_by_page["7102"] if "message" in m] == [
        "answer from the sibling page"
    ]
    assert "7101" not in fake.sent_by_page


# --- 3: long replies split on word boundaries into ordered parts ----------------------------


def words(count: int, word: str) -> str:
    return " ".join(f"{word}{i}" for i in range(count))


async def test_long_replies_reach_every_platform_whole_in_ordered_parts(world: World) -> None:
    tenant = "long-replies"
    token = await world.telegram(tenant, "tg-long")
    telegram = await telegram_says(world, "tg-long", 91, "tell me everything")
    long_telegram = words(700, "word")  # 5,689 characters
    to_telegram = await agent_reply(world.bus, tenant, telegram, long_telegram)

    assert (await world.messenger.send("psid-long", "and on Messenger?")).status_code == 200
    messenger = (await world.watch.wait_for("message.sent", body="and on Messenger?"))[0]
    long_messenger = words(400, "mot")  # 2,690 characters
    to_messenger = await agent_reply(
        world.bus, SHARED_TENANT, messenger.data["conversation_id"], long_messenger
    )

    assert (await world.wechat.send("long", "微信呢?")).status_code == 200
    wechat = (await world.watch.wait_for("message.sent", body="微信呢?"))[0]
    long_wechat = " ".join(["你好世界"] * 250)  # 3,249 bytes of UTF-8
    to_wechat = await agent_reply(
        world.bus, SHARED_TENANT, wechat.data["conversation_id"], long_wechat
    )

    reports = {}
    for message_id in (to_telegram, to_messenger, to_wechat):
        reports[message_id] = (
            await world.watch.wait_for("connector.outbound_sent", message_id=message_id)
        )[0].data
    got_telegram = texts(world.fakes.telegram.sent_by_bot[bot_id(token)], 91)
    got_messenger = [
        m["message"]["text"]
        for m in world.fakes.messenger.sent
        if m["recipient"]["id"] == "psid-long" and "message" in m
    ]
    got_wechat = [
        m["text"]["content"] for m in world.fakes.wechat.sent if m["touser"] == "openid_long"
    ]
    for got, whole, fits in (
        (got_telegram, long_telegram, lambda p: len(p.encode("utf-16-le")) // 2 <= 4096),
        (got_messenger, long_messenger, lambda p: len(p.encode("utf-16-le")) // 2 <= 2000),
        (got_wechat, long_wechat, lambda p: len(p.encode()) <= 2048),
    ):
        assert len(got) == 2 and all(fits(part) for part in got)
        assert " ".join(got) == whole  # split between words: every word, in order
    assert [reports[m]["parts"] for m in (to_telegram, to_messenger, to_wechat)] == [2, 2, 2]
    assert len(reports[to_telegram]["platform_message_ids"]) == 2
    assert world.watch.of("connector.outbound_failed", conversation_id=telegram) == []


# --- 5: a refused credential parks the outbox; new credentials resume it in order ------------


async def test_refused_credentials_park_the_replies_and_new_ones_send_them_in_order(
    world: World,
) -> None:
    tenant = "parked-credentials"
    old_token = await world.telegram(tenant, "tg-park")
    conversation = await telegram_says(world, "tg-park", 92, "are you there?")
    world.fakes.telegram.tokens.discard(old_token)  # revoked: Telegram answers 401
    replies = [
        await agent_reply(world.bus, tenant, conversation, f"queued reply {i}") for i in range(3)
    ]
    for message_id in replies:
        failed = await world.watch.wait_for("connector.outbound_failed", message_id=message_id)
        assert failed[0].data["permanent"] is True and failed[0].data["parked"] is True
    assert (
        world.watch.of("connector.outbound_failed", message_id=replies[0])[0]
        .data["reason"]
        .startswith("401")
    )
    assert [
        world.watch.of("connector.outbound_failed", message_id=m)[0].data["waits_for"]
        for m in replies
    ] == ["credentials"] * 3

    # Saved again with the same token (its other settings, or a re-seal): the platform would
    # refuse it again, so the replies stay parked. Every reconfiguration used to release them
    # (each then reported as failed once more). The next reply shows the round that followed:
    # it is held, and nothing was tried again before it.
    assert (
        await configure(
            world.bus, world.service.box, tenant, "tg-park", "telegram", {"mode": "webhook"}, {}
        )
    ).ok
    replies.append(await agent_reply(world.bus, tenant, conversation, "queued reply 3"))
    await world.watch.wait_for("connector.outbound_failed", message_id=replies[-1])
    assert [len(world.watch.of("connector.outbound_failed", message_id=m)) for m in replies] == [
        1,
        1,
        1,
        1,
    ]

    new_token = f"{bot_id(old_token)}:regenerated-token_1"  # the same bot, a new token
    world.fakes.telegram.add_bot(new_token)
    reply = await configure(
        world.bus,
        world.service.box,
        tenant,
        "tg-park",
        "telegram",
        {"mode": "webhook"},
        {"bot_token": new_token},
    )
    assert reply.ok
    for message_id in replies:
        await world.watch.wait_for("connector.outbound_sent", message_id=message_id)
    sent = world.fakes.telegram.sent_by_bot[bot_id(new_token)]
    assert texts(sent, 92) == [f"queued reply {i}" for i in range(4)]  # each once, in order


async def test_a_refused_reply_waits_with_the_ones_behind_it_until_the_agent_retries(
    world: World,
) -> None:
    messenger = world.fakes.messenger
    assert (await world.messenger.send("psid-retry", "hello")).status_code == 200
    conversation = (await world.watch.wait_for("message.sent", body="hello"))[0].data[
        "conversation_id"
    ]
    messenger.fail_next = ["551 unavailable"]  # "This person isn't available right now."
    refused = await agent_reply(world.bus, SHARED_TENANT, conversation, "first answer")
    behind = await agent_reply(world.bus, SHARED_TENANT, conversation, "second answer")
    head = await world.watch.wait_for("connector.outbound_failed", message_id=refused)
    held = await world.watch.wait_for("connector.outbound_failed", message_id=behind)
    assert head[0].data["parked"] and held[0].data["parked"]
    assert held[0].data["reason"].startswith("held")
    assert head[0].data["waits_for"] == "retry" and head[0].data["behind"] is None
    assert held[0].data["waits_for"] == "earlier_reply" and held[0].data["behind"] == refused

    async def retry(message_id: str) -> None:
        """What the console's "retry" sends (op retry_delivery; the gateway publishes it)."""
        await world.bus.publish(
            Envelope(
                type="connector.outbound_retry_requested",
                tenant=SHARED_TENANT,
                stream=f"conv:{conversation}",
                actor=Actor(kind="agent", id="agent-1"),
                data={"conversation_id": conversation, "message_id": message_id},
            )
        )

    # A retry of the reply behind releases that one only: the refused one stays parked, so
    # the one behind it is parked again (reported again), and nothing was sent. It used to
    # release every parked reply of the conversation.
    await retry(behind)
    again = await world.watch.wait_for("connector.outbound_failed", count=2, message_id=behind)
    assert again[1].data["waits_for"] == "earlier_reply" and again[1].data["behind"] == refused
    assert world.watch.of("connector.outbound_sent", conversation_id=conversation) == []
    assert len(world.watch.of("connector.outbound_failed", message_id=refused)) == 1

    # The refused one's retry sends it, then the one waiting behind it.
    await retry(refused)
    await world.watch.wait_for("connector.outbound_sent", message_id=behind)
    got = [
        m["message"]["text"]
        for m in messenger.sent
        if m["recipient"]["id"] == "psid-retry" and "message" in m
    ]
    assert got == ["first answer", "second answer"]
    assert len(world.watch.of("connector.outbound_sent", message_id=refused)) == 1


async def test_a_removed_connectors_replies_fail_and_never_go_out_through_its_ids_next_owner(
    world: World,
) -> None:
    """Connector ids are global: once removed, another tenant may take one. The first
    tenant's parked replies used to go out through the new tenant's bot (its token counted as
    new credentials for them), and so did its later replies (looked up by id alone)."""
    first, next_owner = "removed-first", "removed-next"
    old_token = await world.telegram(first, "tg-reused")
    conversation = await telegram_says(world, "tg-reused", 97, "hello before the removal")
    world.fakes.telegram.tokens.discard(old_token)  # revoked: the reply waits for credentials
    parked = await agent_reply(world.bus, first, conversation, "confidential, parked")
    held = await world.watch.wait_for("connector.outbound_failed", message_id=parked)
    assert held[0].data["waits_for"] == "credentials"

    assert (await remove(world.bus, first, "tg-reused")).ok
    new_token = await world.telegram(next_owner, "tg-reused")  # another tenant takes the id
    later = await agent_reply(world.bus, first, conversation, "confidential, after the removal")
    theirs = await telegram_says(world, "tg-reused", 98, "hello to the id's next owner")
    answer = await agent_reply(world.bus, next_owner, theirs, "answer of the next owner")
    await world.watch.wait_for("connector.outbound_sent", message_id=answer)

    assert texts(world.fakes.telegram.sent_by_bot[bot_id(new_token)], 97) == []
    for message_id in (parked, later):
        failed = await world.watch.wait_for(
            "connector.outbound_failed", message_id=message_id, reason="connector removed"
        )
        assert failed[0].data["permanent"] is True and failed[0].data["parked"] is False
        assert world.watch.of("connector.outbound_sent", message_id=message_id) == []


# --- 6: Telegram webhooks registered by the service; duplicate credentials refused -----------


async def test_the_service_registers_the_webhook_with_a_secret_and_removes_it_for_polling(
    world: World,
) -> None:
    tenant = "webhook-setup"
    fake = world.fakes.telegram
    token = world.new_bot()
    bot = bot_id(token)
    assert (
        await configure(
            world.bus, world.service.box, tenant, "tg-hook", "telegram", {}, {"bot_token": token}
        )
    ).ok  # webhook mode, no secret given: one is made and registered
    registered = await eventually(lambda: fake.webhooks.get(bot), what="setWebhook")
    assert registered["url"] == f"{PUBLIC_URL}/webhooks/telegram/tg-hook"
    secret = registered["secret_token"]
    assert secret and len(secret) >= 32

    url = f"http://127.0.0.1:{world.service.port}/webhooks/telegram/tg-hook"
    update = fake.update(93, "through the registered webhook")
    assert (await fake.post_webhook(url, update, secret)).status_code == 200
    await world.watch.wait_for("message.sent", body="through the registered webhook")
    forged = fake.update(93, "forged")
    assert (await fake.post_webhook(url, forged, "not-the-secret")).status_code == 403

    polling = await configure(
        world.bus, world.service.box, tenant, "tg-hook", "telegram", {"mode": "polling"}, {}
    )
    assert polling.ok
    await eventually(lambda: bot not in fake.webhooks, what="deleteWebhook")
    await fake.queue_update(fake.update(93, "through getUpdates now"))
    await world.watch.wait_for("message.sent", body="through getUpdates now", timeout=15)
    methods = [method.lower() for b, method, _ in fake.webhook_calls if b == bot]
    assert methods[0] == "setwebhook" and "deletewebhook" in methods


async def test_a_bot_page_or_account_already_connected_is_refused(world: World) -> None:
    token = await world.telegram("dup-one", "tg-dup")
    again = await configure(
        world.bus,
        world.service.box,
        "dup-two",
        "tg-dup2",
        "telegram",
        {"mode": "polling"},
        {"bot_token": token},
    )
    assert (again.ok, again.code) == (False, "conflict")
    page = await configure(
        world.bus,
        world.service.box,
        "dup-two",
        "fb-dup",
        "messenger",
        {"page_id": world.fakes.messenger.page_id},
        {"app_secret": "a", "page_token": "p", "verify_token": "v"},
    )
    assert (page.ok, page.code) == (False, "conflict")


async def test_spaces_around_a_bot_token_page_or_account_make_it_no_other_one(
    world: World,
) -> None:
    """A pasted " 5001" used to pass the duplicate check for page 5001 (and " 7001:tok" for
    bot 7001): identifying values are stripped when configured."""
    token = await world.telegram("spaced-one", "tg-spaced")
    meta, wechat = world.fakes.messenger, world.fakes.wechat
    attempts = {
        "telegram": ({"mode": "polling"}, {"bot_token": f" {token}\n"}),
        "messenger": (
            {"page_id": f" {meta.page_id} "},
            {"app_secret": "a", "page_token": "p", "verify_token": "v"},
        ),
        "wechat": (
            {"app_id": f"{wechat.app_id}\t", "plaintext_allowed": "true"},
            {"app_secret": "a", "token": "t"},
        ),
    }
    for platform, (public, secrets) in attempts.items():
        again = await configure(
            world.bus, world.service.box, "spaced", f"{platform}-spaced", platform, public, secrets
        )
        assert (again.ok, again.code) == (False, "conflict"), platform

    # A new page entered with spaces is that page: its id is stored bare, and its users' messages
    # (Meta names the page bare) are its own.
    meta.add_page("7301", "token-7301")
    secrets = {"app_secret": meta.app_secret, "page_token": "token-7301", "verify_token": "v"}
    reply = await configure(
        world.bus,
        world.service.box,
        "spaced",
        "fb-7301",
        "messenger",
        {"page_id": " 7301 "},
        secrets,
    )
    assert reply.ok, reply
    [view] = world.service.directory.public_view("spaced")
    assert view["public_config"] == {"page_id": "7301"}
    note = meta.notification("psid-spaced", "to the spaced page", page_id="7301")
    url = f"http://127.0.0.1:{world.service.port}/webhooks/messenger/fb-7301"
    assert (await meta.post_webhook(url, note)).status_code == 200
    said = await world.watch.wait_for("message.sent", body="to the spaced page")
    answer = await agent_reply(world.bus, "spaced", str(said[0].data["conversation_id"]), "ok")
    await world.watch.wait_for("connector.outbound_sent", message_id=answer)
    assert [m["message"]["text"] for m in meta.sent_by_page["7301"]] == ["ok"]


# --- 10: WeChat's daily quota -----------------------------------------------------------------


async def test_wechat_daily_quota_is_not_retried_every_round_and_resumes_in_order(
    world: World,
) -> None:
    wechat = world.fakes.wechat
    assert (await world.wechat.send("quota", "额度")).status_code == 200
    conversation = (await world.watch.wait_for("message.sent", body="额度"))[0].data[
        "conversation_id"
    ]
    calls_before = wechat.send_calls
    wechat.daily_quota = 0  # 45009: the account's daily quota is used up
    first = await agent_reply(world.bus, SHARED_TENANT, conversation, "after the quota 1")
    failed = await world.watch.wait_for("connector.outbound_failed", message_id=first)
    assert failed[0].data["permanent"] is False and failed[0].data["reason"].startswith("45009")
    assert wechat.send_calls == calls_before + 1  # not retried within the round
    second = await agent_reply(world.bus, SHARED_TENANT, conversation, "after the quota 2")
    # nor every round: deferred to the reset (midnight, Beijing time)
    deferred = await eventually(lambda: world.service.deferred_s("wx1"), what="deferral")
    assert deferred > 60 and world.service.breaker_state("wx1") == "closed"
    assert wechat.send_calls == calls_before + 1

    wechat.daily_quota = None  # the admin cleared the quota, then saved the connector again
    again = await world.wechat.setup(world.bus, SHARED_TENANT)
    assert again.ok
    await world.watch.wait_for("connector.outbound_sent", message_id=second)
    got = [m["text"]["content"] for m in wechat.sent if m["touser"] == "openid_quota"]
    assert got == ["after the quota 1", "after the quota 2"]


async def test_connections_by_bot_token_still_answer_webhooks(world: World) -> None:
    """Mappings written before chats were keyed by connector keep their conversation."""
    tenant = "legacy-keys"
    await world.telegram(tenant, "tg-legacy")
    first = await telegram_says(world, "tg-legacy", 94, "before the upgrade")
    mongo = make_client(world.settings.mongo_url or "")
    try:
        raw = database(mongo, world.settings.mongo_db)["connector_conversations"]
        doc = await raw.find_one({"_id": f"{tenant}|tg-legacy|94"})
        assert doc is not None
        await raw.delete_one({"_id": doc["_id"]})
        await raw.insert_one({**doc, "_id": f"{tenant}|telegram|94"})  # the old key
        again = await telegram_says(world, "tg-legacy", 94, "after the upgrade")
        assert again == first
        store = ConnectorStore(database(mongo, world.settings.mongo_db))
        moved = await store.conversation_for_chat(tenant, "tg-legacy", "telegram", "94")
        assert moved is not None and moved.conversation_id == first
        assert await raw.count_documents({"conversation_id": first}) == 1
    finally:
        await mongo.close()
    reply = await agent_reply(world.bus, tenant, first, "still yours")
    await world.watch.wait_for("connector.outbound_sent", message_id=reply)


# --- 11: the at-least-once edge, measured -----------------------------------------------------


async def test_a_lost_answer_after_telegram_processed_the_call_duplicates_that_message(
    world: World,
) -> None:
    """Neither Send API takes an idempotency key: an answer lost after the platform processed
    the call makes the retry a second copy. Nothing is lost and the order holds; the number of
    copies is exactly the number of answers lost (docs/connectors.md gives the measured rate)."""
    tenant = "lost-answers"
    token = await world.telegram(tenant, "tg-lossy")
    conversation = await telegram_says(world, "tg-lossy", 96, "count with me")
    fake = world.fakes.telegram
    fake.lose_answers, fake.lost_answers = 0.1, 0
    try:
        bodies = [f"number {i}" for i in range(60)]
        replies = [agent_message(tenant, conversation, body) for body in bodies]
        await world.bus.publish_many(replies)
        last = replies[-1].data["message_id"]
        await world.watch.wait_for("connector.outbound_sent", message_id=last, timeout=60)
    finally:
        fake.lose_answers = 0.0
    got = texts(fake.sent_by_bot[bot_id(token)], 96)
    once = [text for n, text in enumerate(got) if n == 0 or got[n - 1] != text]
    assert once == bodies  # nothing lost, in order; every copy right after its original
    duplicates = len(got) - len(bodies)
    assert duplicates == fake.lost_answers > 0
    print(f"answers lost: {fake.lost_answers}; copies: {duplicates} of {len(bodies)}")


# --- Send API errors in the documented Graph shapes -----------------------------------------


async def messenger_chat(world: World, psid: str) -> str:
    assert (await world.messenger.send(psid, f"hello from {psid}")).status_code == 200
    opened = await world.watch.wait_for("message.sent", body=f"hello from {psid}")
    return str(opened[0].data["conversation_id"])


def messenger_texts(world: World, psid: str) -> list[str]:
    return [
        m["message"]["text"]
        for m in world.fakes.messenger.sent
        if m["recipient"]["id"] == psid and "message" in m
    ]


async def test_transient_graph_errors_are_retried_then_delivered_once(world: World) -> None:
    fake = world.fakes.messenger
    conversation = await messenger_chat(world, "psid-transient")
    calls = len(fake.calls)
    fake.fail_next = ["1200 temporary", "2 unexpected"]  # HTTP 400 code 1200, HTTP 500 code 2
    first = await agent_reply(world.bus, SHARED_TENANT, conversation, "after two failures")
    await world.watch.wait_for("connector.outbound_sent", message_id=first)
    assert len(fake.calls) == calls + 3
    fake.fail_next = ["html 502", "613 rate limit"]  # a proxy's non-JSON 502, then throttling
    second = await agent_reply(world.bus, SHARED_TENANT, conversation, "after a 502 and a 613")
    await world.watch.wait_for("connector.outbound_sent", message_id=second)
    assert len(fake.calls) == calls + 6
    assert messenger_texts(world, "psid-transient") == [
        "after two failures",
        "after a 502 and a 613",
    ]
    # recovered within the round: nothing to report
    assert world.watch.of("connector.outbound_failed", conversation_id=conversation) == []
    assert len(world.watch.of("connector.outbound_sent", message_id=first)) == 1
    assert world.service.breaker_state("fb1") == "closed"


async def test_permanent_graph_errors_are_reported_once_parked_and_not_retried(
    world: World,
) -> None:
    """Each refused reply is parked (kept for the agent's retry) with the replies behind it in
    its conversation; other conversations go on."""
    fake = world.fakes.messenger
    permanent = ["100 invalid parameter", "551 unavailable", "10 outside window"]
    chats = {name: await messenger_chat(world, f"psid-perm{n}") for n, name in enumerate(permanent)}
    going_on = await messenger_chat(world, "psid-perm-other")
    calls = len(fake.calls)
    fake.fail_next = list(permanent)
    failed = [
        await agent_reply(world.bus, SHARED_TENANT, chats[name], f"refused: {name}")
        for name in permanent
    ]
    held = await agent_reply(world.bus, SHARED_TENANT, chats[permanent[0]], "waits behind")
    after = await agent_reply(world.bus, SHARED_TENANT, going_on, "the queue goes on")
    await world.watch.wait_for("connector.outbound_sent", message_id=after)
    held_report = await world.watch.wait_for("connector.outbound_failed", message_id=held)

    assert len(fake.calls) == calls + len(permanent) + 1  # one call each: none was retried
    assert messenger_texts(world, "psid-perm-other") == ["the queue goes on"]
    for name, message_id in zip(permanent, failed, strict=True):
        code, message, _, _, subcode = GRAPH_ERRORS[name]
        reports = world.watch.of("connector.outbound_failed", message_id=message_id)
        assert len(reports) == 1, name
        assert reports[0].data["permanent"] is True and reports[0].data["parked"] is True
        assert reports[0].data["reason"] == f"{code}/{subcode} {message}"
        assert reports[0].data["conversation_id"] == chats[name]
        assert world.watch.of("connector.outbound_sent", message_id=message_id) == []
    assert held_report[0].data["parked"] and held_report[0].data["reason"].startswith("held")
    assert world.service.breaker_state("fb1") == "closed"  # the platform answered


# --- a chat keeps its conversation until it is closed ----------------------------------------


async def test_a_chat_keeps_its_conversation_until_it_is_closed(world: World) -> None:
    tenant = "until-closed"
    await world.telegram(tenant, "tg-close")
    one = await telegram_says(world, "tg-close", 81, "one")
    assert await telegram_says(world, "tg-close", 81, "two") == one
    assert await telegram_says(world, "tg-close", 82, "other user") != one

    await closed(world, tenant, one)
    three = await telegram_says(world, "tg-close", 81, "three")
    assert three != one
    requested = await world.watch.wait_for("conversation.requested", conversation_id=three)
    assert requested[0].data["channel"] == "telegram"


async def closed(world: World, tenant: str, conversation_id: str) -> None:
    """The agent closes the conversation; returns once the connectors' mapping says so."""
    close = Envelope(
        type="conversation.close",
        tenant=tenant,
        stream=f"conv:{conversation_id}",
        actor=Actor(kind="agent", id="agent-1"),
        data={"conversation_id": conversation_id, "closed_by": "agent"},
    )
    assert (await RpcClient(world.bus).command("agent", close)).ok
    mongo = make_client(world.settings.mongo_url or "")
    try:
        mapping = ConnectorStore(database(mongo, world.settings.mongo_db))
        await eventually_async(
            lambda: mapping.by_conversation_id(tenant, conversation_id),
            lambda c: c is not None and c.closed,
        )
    finally:
        await mongo.close()


async def test_an_edit_goes_to_the_conversation_of_the_message_it_edits(world: World) -> None:
    """The chat's current conversation used to get it, though the message was in an earlier
    one, closed since."""
    tenant = "edit-old"
    await world.telegram(tenant, "tg-edit")
    fake = world.fakes.telegram
    original = fake.update(83, "about order 1")
    url = f"http://127.0.0.1:{world.service.port}/webhooks/telegram/tg-edit"
    assert (await fake.post_webhook(url, original, "s3cret_tg-edit")).status_code == 200
    [first] = await world.watch.wait_for("message.sent", body="about order 1")
    earlier = str(first.data["conversation_id"])
    await closed(world, tenant, earlier)
    later = await telegram_says(world, "tg-edit", 83, "a new question")
    assert later != earlier

    message_id = original["message"]["message_id"]
    edit = fake.edit_update(83, message_id, "about order 2")
    assert (await fake.post_webhook(url, edit, "s3cret_tg-edit")).status_code == 200
    [edited] = await world.watch.wait_for("message.edited", body="about order 2")
    assert edited.data["message_id"] == first.data["message_id"]
    assert edited.data["conversation_id"] == earlier


async def test_a_group_upgraded_to_a_supergroup_keeps_its_conversation_and_its_replies(
    world: World,
) -> None:
    """Telegram gives a group upgraded to a supergroup a new chat id and refuses sends to the
    old one (400 with migrate_to_chat_id): the reply used to be parked for good, and the
    group's next message opened another conversation."""
    tenant, fake = "upgraded", world.fakes.telegram
    token = await world.telegram(tenant, "tg-upgrade")
    group, supergroup = -5550001, -1005550001
    conversation = await telegram_says(world, "tg-upgrade", 84, "asked in the group", group=group)
    fake.migrated[group] = supergroup  # upgraded before the answer: Telegram refuses the group
    answer = await agent_reply(world.bus, tenant, conversation, "answer after the upgrade")
    await world.watch.wait_for("connector.outbound_sent", message_id=answer)
    assert texts(fake.sent_by_bot[bot_id(token)], supergroup) == ["answer after the upgrade"]
    assert world.watch.of("connector.outbound_failed", message_id=answer) == []
    again = await telegram_says(world, "tg-upgrade", 84, "asked again", group=supergroup)
    assert again == conversation

    # Upgraded while nothing was being sent: the service message moves the chat at once.
    other, other_super = -5550002, -1005550002
    second = await telegram_says(world, "tg-upgrade", 85, "another group", group=other)
    url = f"http://127.0.0.1:{world.service.port}/webhooks/telegram/tg-upgrade"
    moved = fake.migration_update(85, other, other_super)
    assert (await fake.post_webhook(url, moved, "s3cret_tg-upgrade")).status_code == 200
    assert await telegram_says(
        world, "tg-upgrade", 85, "from the supergroup", group=other_super
    ) == (second)


# --- paused (by an admin, or imported): replies wait in the outbox -----------------------------


def paused_event(tenant: str, connector_id: str, type_name: str, **data: Any) -> Envelope:
    """What the admin service decides (``connector.pause`` / ``connector.resume``)."""
    return Envelope(
        type=type_name,
        tenant=tenant,
        stream=f"connector:{connector_id}",
        actor=Actor(kind="admin", id="owner-1"),
        data={"connector_id": connector_id, **data},
    )


async def test_a_paused_connector_sends_nothing_and_its_replies_go_out_in_order_on_resume(
    world: World,
) -> None:
    tenant = "paused-bot"
    paused_bot = await world.telegram(tenant, "tg-paused")
    live_bot = await world.telegram(tenant, "tg-live")
    held = await telegram_says(world, "tg-paused", 91, "hello, paused bot")
    control = await telegram_says(world, "tg-live", 92, "hello, live bot")
    pause = paused_event(tenant, "tg-paused", "connector.paused", reason="admin")
    await world.bus.publish(pause)
    for body in ("one", "two"):
        await agent_reply(world.bus, tenant, held, body)
    # After them on the log: once it is sent, the paused one's were queued and tried as early.
    await agent_reply(world.bus, tenant, control, "control")
    telegram = world.fakes.telegram
    await eventually(
        lambda: texts(telegram.sent_by_bot.get(bot_id(live_bot), []), 92) == ["control"]
    )
    assert texts(telegram.sent_by_bot.get(bot_id(paused_bot), []), 91) == []

    await world.bus.publish(
        paused_event(tenant, "tg-paused", "connector.resumed", pauses=[pause.id])
    )
    await eventually(
        lambda: texts(telegram.sent_by_bot.get(bot_id(paused_bot), []), 91) == ["one", "two"]
    )
