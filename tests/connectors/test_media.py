"""Files both ways, system lines, ratings, edits, blocks and profiles on the three platforms.

One system for the module (agent service, connectors, the three fakes); every test has its
own platform users. The tenant keeps a greeting and an offline line, so every chat starts
with them: nobody is online in these tests.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from agent_service.service import AgentService
from connectors.outbound_items import RATING_REQUEST
from connectors.service import ConnectorsService
from connectors.wechat import RATING_HINT
from contracts.envelope import Actor, Envelope
from contracts.events.admin import TenantSettingsChanged
from relaydesk.attachments import AttachmentStore
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.store import database, make_client
from tests.connectors.conftest import AES_KEY, TELEGRAM_TOKEN
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat, media_xml, text_xml
from tests.connectors.harness import configure
from tests.connectors.helpers import LogWatch, agent_attachment, agent_reply, eventually
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import throwaway_settings

TENANT = "media"
GREETING = "Welcome to Media Co!"
OFFLINE = "Nobody is here right now; we answer by tomorrow."
CLOSED = "The conversation was closed by the agent"
MB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(255, -1, -1)) * 8
PDF = b"%PDF-1.4\n" + b"receipt " * 300
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x01" * 500
OGG = b"OggS\x00\x02" + b"\x07" * 700
AMR = b"#!AMR\n" + b"\x3c" * 400


@dataclass
class Media:
    telegram: FakeTelegram
    messenger: FakeMessenger
    wechat: FakeWeChat
    service: ConnectorsService
    bus: Bus
    watch: LogWatch
    files: AttachmentStore

    @property
    def messenger_url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}/webhooks/messenger/fb-media"

    @property
    def wechat_url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}/webhooks/wechat/wx-media"

    async def conversation_of(self, author_id: str) -> str:
        found = await self.watch.wait_for("connector.inbound_received", platform_user_id=author_id)
        return str(found[-1].data["conversation_id"])

    async def telegram_chat(self, user: int, text: str) -> str:
        await self.telegram.queue_update(self.telegram.update(user, text))
        return await self.conversation_of(str(user))

    async def messenger_chat(self, psid: str, text: str) -> str:
        sent = await self.messenger.post_webhook(
            self.messenger_url, self.messenger.notification(psid, text)
        )
        assert sent.status_code == 200
        return await self.conversation_of(psid)

    async def wechat_push(self, xml: str) -> None:
        assert (await self.wechat.push(self.wechat_url, xml)).text == "success"

    async def wechat_chat(self, openid: str, text: str, msg_id: int) -> str:
        await self.wechat_push(text_xml("gh_fake", openid, text, msg_id))
        return await self.conversation_of(openid)

    async def stored(self, attachment_id: str) -> bytes:
        return await self.files.read(attachment_id)

    async def close(self, conversation_id: str) -> None:
        close = Envelope(
            type="conversation.close",
            tenant=TENANT,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind="agent", id="agent-1"),
            data={"conversation_id": conversation_id, "closed_by": "agent"},
        )
        assert (await RpcClient(self.bus).command("agent", close)).ok


def telegram_texts(fake: FakeTelegram, chat: int) -> list[str]:
    return [m["text"] for m in fake.sent if m["chat_id"] == chat and "text" in m]


def messenger_to(fake: FakeMessenger, psid: str) -> list[dict[str, Any]]:
    return [m for m in fake.sent if m["recipient"]["id"] == psid]


def wechat_to(fake: FakeWeChat, openid: str) -> list[dict[str, Any]]:
    return [m for m in fake.sent if m["touser"] == openid]


@pytest.fixture(scope="module")
async def media(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[Media]:
    telegram = FakeTelegram(TELEGRAM_TOKEN)
    messenger = FakeMessenger("5566778899", "media-page-token", "media-app-secret")
    wechat = FakeWeChat("wx5566778899", "media-wechat-secret", "BBBBB", AES_KEY)
    await asyncio.gather(telegram.start(), messenger.start(), wechat.start())
    overrides = {
        "connectors_port": 0,
        "telegram_api_base": telegram.base_url,
        "messenger_api_base": messenger.base_url,
        "wechat_api_base": wechat.base_url,
        "webhook_allowed_networks": "127.0.0.1/32",  # the fakes' "CDN" is on loopback
    }
    async with throwaway_settings(vhosts, mongo_server, **overrides) as settings:
        bus = await Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()
        await bus.publish(
            Envelope(
                type=TenantSettingsChanged.TYPE,
                tenant=TENANT,
                stream=f"tenant:{TENANT}",
                actor=Actor(kind="admin", id="owner-1"),
                data={"before": {}, "after": {"greeting": GREETING, "offline_text": OFFLINE}},
            )
        )
        agent = AgentService(settings)
        await agent.start()
        service = ConnectorsService(settings)
        await service.start()
        watch = await LogWatch(bus).start()
        mongo = make_client(settings.mongo_url or "")
        try:
            for connector_id, platform, public, secrets in (
                ("tg-media", "telegram", {"mode": "polling"}, {"bot_token": telegram.token}),
                (
                    "fb-media",
                    "messenger",
                    {"page_id": messenger.page_id},
                    {
                        "app_secret": messenger.app_secret,
                        "page_token": messenger.page_token,
                        "verify_token": "v",
                    },
                ),
                (
                    "wx-media",
                    "wechat",
                    {"app_id": wechat.app_id},
                    {
                        "app_secret": wechat.app_secret,
                        "token": wechat.token,
                        "encoding_aes_key": wechat.aes_key,
                    },
                ),
            ):
                reply = await configure(
                    bus, service.box, TENANT, connector_id, platform, public, secrets
                )
                assert reply.ok, reply
            yield Media(
                telegram,
                messenger,
                wechat,
                service,
                bus,
                watch,
                AttachmentStore(database(mongo, settings.mongo_db)),
            )
        finally:
            await mongo.close()
            await watch.stop()
            await service.stop()
            await agent.stop()
            await bus.close()
            await asyncio.gather(telegram.stop(), messenger.stop(), wechat.stop())


# --- agents' files ---------------------------------------------------------------------


async def test_agent_files_go_out_with_each_platforms_media_calls(media: Media) -> None:
    tg = await media.telegram_chat(601, "can you see my screen?")
    fb = await media.messenger_chat("psid-601", "hello")
    wx = await media.wechat_chat("openid_601", "hello", 601)
    sent = [
        await agent_attachment(media.bus, media.files, TENANT, tg, "shot.png", "image/png", PNG),
        await agent_attachment(
            media.bus, media.files, TENANT, tg, "terms.pdf", "application/pdf", PDF
        ),
        await agent_attachment(media.bus, media.files, TENANT, fb, "shot.png", "image/png", PNG),
        await agent_attachment(media.bus, media.files, TENANT, wx, "shot.png", "image/png", PNG),
    ]
    for message_id in sent:  # uploads through three platforms' media calls: slow on a busy box
        await media.watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=30)
    assert [
        (m["method"], m["filename"], m["content_type"], m["content"])
        for m in media.telegram.sent
        if m["chat_id"] == 601 and m["method"] != "sendMessage"
    ] == [
        ("sendPhoto", "shot.png", "image/png", PNG),
        ("sendDocument", "terms.pdf", "application/pdf", PDF),
    ]
    [to_fb] = [m for m in messenger_to(media.messenger, "psid-601") if "file" in m]
    assert to_fb["message"] == {"attachment": {"type": "image", "payload": {"is_reusable": False}}}
    assert to_fb["file"]["content"] == PNG and to_fb["messaging_type"] == "RESPONSE"
    [to_wx] = [m for m in wechat_to(media.wechat, "openid_601") if m["msgtype"] == "image"]
    assert media.wechat.uploads[to_wx["image"]["media_id"]]["content"] == PNG
    assert [
        e for e in media.watch.of("connector.outbound_failed") if e.data["message_id"] in sent
    ] == []


async def test_files_a_platform_cannot_take_fail_clearly_and_the_queue_goes_on(
    media: Media,
) -> None:
    wx = await media.wechat_chat("openid_602", "send me the contract", 602)
    pdf = await agent_attachment(
        media.bus, media.files, TENANT, wx, "contract.pdf", "application/pdf", PDF
    )
    voice = b"ID3" + b"\x00" * (2 * MB)  # WeChat voice messages: 2 MB at most
    big = await agent_attachment(
        media.bus, media.files, TENANT, wx, "note.mp3", "audio/mpeg", voice
    )
    after = await agent_reply(media.bus, TENANT, wx, "I will email it instead")
    refused = await media.watch.wait_for("connector.outbound_failed", message_id=pdf)
    assert refused[0].data["permanent"] is True
    assert refused[0].data["reason"].startswith("WeChat cannot send application/pdf files")
    too_big = await media.watch.wait_for("connector.outbound_failed", message_id=big)
    assert (
        too_big[0].data["reason"]
        == ("too large for WeChat: voice files up to 2 MB, this file is 2.0 MB")
        and too_big[0].data["permanent"] is True
    )
    await media.watch.wait_for("connector.outbound_sent", message_id=after)
    assert wechat_to(media.wechat, "openid_602")[-1]["text"]["content"] == "I will email it instead"
    assert not [
        u for u in media.wechat.uploads.values() if u["filename"] in {"contract.pdf", "note.mp3"}
    ]


# --- system lines and ratings ------------------------------------------------------------


async def test_telegram_user_hears_greeting_offline_closing_and_rates_with_a_button(
    media: Media,
) -> None:
    conversation_id = await media.telegram_chat(603, "is anyone there?")
    await eventually(
        lambda: telegram_texts(media.telegram, 603) == [GREETING, OFFLINE],
        what="greeting and offline line",
    )
    await media.close(conversation_id)
    await eventually(lambda: len(telegram_texts(media.telegram, 603)) == 4, what="closing lines")
    assert telegram_texts(media.telegram, 603)[2:] == [CLOSED, RATING_REQUEST]
    [buttons] = media.telegram.sent[-1]["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in buttons] == [
        f"rate:{conversation_id}:{score}" for score in range(1, 6)
    ]
    await media.telegram.queue_update(
        media.telegram.callback_update(603, buttons[3]["callback_data"])
    )
    rated = await media.watch.wait_for("conversation.rated", conversation_id=conversation_id)
    assert rated[0].data["score"] == 4 and rated[0].actor.id == "telegram:603"
    await eventually(lambda: media.telegram.answered, what="the button press answered")


async def test_messenger_rates_with_quick_replies_and_wechat_with_a_typed_number(
    media: Media,
) -> None:
    fb = await media.messenger_chat("psid-604", "hi")
    wx = await media.wechat_chat("openid_604", "hi", 604)
    await media.close(fb)
    await media.close(wx)
    await eventually(
        lambda: (
            [m["message"].get("text") for m in messenger_to(media.messenger, "psid-604")]
            == [GREETING, OFFLINE, CLOSED, RATING_REQUEST]
        ),
        what="Messenger lines",
    )
    replies = messenger_to(media.messenger, "psid-604")[-1]["message"]["quick_replies"]
    assert [r["payload"] for r in replies] == [f"rate:{fb}:{score}" for score in range(1, 6)]
    answer = media.messenger.quick_reply_notification(
        "psid-604", replies[1]["title"], replies[1]["payload"]
    )
    assert (await media.messenger.post_webhook(media.messenger_url, answer)).status_code == 200
    await eventually(
        lambda: (
            [m["text"]["content"] for m in wechat_to(media.wechat, "openid_604")]
            == [GREETING, OFFLINE, CLOSED, f"{RATING_REQUEST}\n{RATING_HINT}"]
        ),
        what="WeChat lines",
    )
    await media.wechat_push(text_xml("gh_fake", "openid_604", " 5 ", 6040))
    rated = await media.watch.wait_for("conversation.rated", conversation_id=fb)
    assert rated[0].data["score"] == 2
    rated = await media.watch.wait_for("conversation.rated", conversation_id=wx)
    assert rated[0].data["score"] == 5
    # the typed answer was the rating, not the start of another conversation
    assert len(media.watch.of("connector.inbound_received", platform_user_id="openid_604")) == 1


async def test_a_number_typed_after_a_close_is_a_message_where_ratings_are_buttons(
    media: Media,
) -> None:
    """Telegram and Messenger rate with buttons: a "3" typed there after a close used to be
    taken as a rating — in a group, another member's was refused and lost, and the rater's
    buttons no longer counted as an answer."""
    group = -100605
    await media.telegram.queue_update(
        media.telegram.update(605, "our team needs help", group=group)
    )
    in_group = await media.conversation_of("605")
    fb = await media.messenger_chat("psid-605", "hello")
    await media.close(in_group)
    await media.close(fb)
    await eventually(
        lambda: telegram_texts(media.telegram, group)[-1:] == [RATING_REQUEST],
        what="the group's rating request",
    )
    await eventually(
        # nothing sent to the chat yet is "not yet", not an IndexError out of the wait
        lambda: any(
            sent["message"].get("quick_replies")
            for sent in messenger_to(media.messenger, "psid-605")[-1:]
        ),
        what="the Messenger rating request",
    )

    await media.telegram.queue_update(media.telegram.update(606, "3", group=group))
    typed = await media.messenger.post_webhook(
        media.messenger_url, media.messenger.notification("psid-605", "3")
    )
    assert typed.status_code == 200
    await media.watch.wait_for("message.sent", body="3", author_id="telegram:606")
    await media.watch.wait_for("message.sent", body="3", author_id="messenger:psid-605")
    assert media.watch.of("conversation.rated", conversation_id=fb) == []

    [request] = [m for m in media.telegram.sent if m["chat_id"] == group and "reply_markup" in m]
    [buttons] = request["reply_markup"]["inline_keyboard"]
    await media.telegram.queue_update(
        media.telegram.callback_update(605, buttons[3]["callback_data"])
    )
    rated = await media.watch.wait_for("conversation.rated", conversation_id=in_group)
    assert rated[0].data["score"] == 4 and rated[0].actor.id == "telegram:605"


async def test_a_typed_rating_refused_on_wechat_still_arrives_as_a_message(media: Media) -> None:
    """A "4" the agent service refuses as a rating (rated already) used to be dropped."""
    wx = await media.wechat_chat("openid_607", "hi", 6070)
    await media.close(wx)
    await eventually(
        lambda: (
            f"{RATING_REQUEST}\n{RATING_HINT}"
            in [m["text"]["content"] for m in wechat_to(media.wechat, "openid_607")]
        ),
        what="WeChat rating request",
    )
    rate = Envelope(  # rated meanwhile, as the customer: the typed answer comes too late
        type="conversation.rate",
        tenant=TENANT,
        stream=f"conv:{wx}",
        actor=Actor(kind="customer", id="wechat:openid_607"),
        data={"conversation_id": wx, "score": 2},
    )
    assert (await RpcClient(media.bus).command("agent", rate)).ok
    await media.wechat_push(text_xml("gh_fake", "openid_607", "4", 6071))
    await media.watch.wait_for("message.sent", body="4", author_id="wechat:openid_607")
    rated = media.watch.of("conversation.rated", conversation_id=wx)
    assert [r.data["score"] for r in rated] == [2]


# --- what customers send ---------------------------------------------------------------------


async def test_telegram_photos_documents_voice_and_stickers_are_stored_with_captions(
    media: Media,
) -> None:
    tg = media.telegram
    updates = [
        tg.photo_update(605, tg.add_file(JPEG, "photos/file_605.jpg"), "the parcel arrived broken"),
        tg.file_update(
            605,
            "document",
            {
                "file_id": tg.add_file(PDF, "documents/receipt.pdf"),
                "file_unique_id": "d605",
                "file_name": "receipt.pdf",
                "mime_type": "application/pdf",
            },
        ),
        tg.file_update(
            605,
            "voice",
            {
                "file_id": tg.add_file(OGG, "voice/file_605.oga"),
                "file_unique_id": "v605",
                "duration": 2,
                "mime_type": "audio/ogg",
            },
        ),
        tg.file_update(
            605,
            "sticker",
            {
                "file_id": tg.add_file(WEBP, "stickers/file_605.webp"),
                "file_unique_id": "s605",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            },
        ),
    ]
    for update in updates:
        await tg.queue_update(update)
    files = await media.watch.wait_for("message.attachment_sent", count=4, author_id="telegram:605")
    assert [(f.data["filename"], f.data["content_type"]) for f in files] == [
        (f"photo_{updates[0]['message']['message_id']}.jpg", "image/jpeg"),
        ("receipt.pdf", "application/pdf"),
        (f"voice_{updates[2]['message']['message_id']}", "audio/ogg"),
        (f"sticker_{updates[3]['message']['message_id']}.webp", "image/webp"),
    ]
    assert [await media.stored(f.data["attachment_id"]) for f in files] == [JPEG, PDF, OGG, WEBP]
    assert files[0].data["caption"] == "the parcel arrived broken"
    assert all("caption" not in f.data for f in files[1:])


async def test_messenger_images_stickers_postbacks_and_wechat_media_arrive(media: Media) -> None:
    fb, wx = media.messenger, media.wechat
    fb.cdn["img606.png"] = (PNG, "image/png")
    fb.cdn["sticker606.png"] = (PNG, "image/png")
    for notification in (
        fb.attachment_notification("psid-606", "image", "img606.png"),
        fb.attachment_notification(
            "psid-606", "image", "sticker606.png", sticker_id=369239263222822
        ),
        fb.postback_notification("psid-606", "Track my order", "TRACK_ORDER"),
    ):
        assert (await fb.post_webhook(media.messenger_url, notification)).status_code == 200
    files = await media.watch.wait_for(
        "message.attachment_sent", count=2, author_id="messenger:psid-606"
    )
    assert [await media.stored(f.data["attachment_id"]) for f in files] == [PNG, PNG]
    assert [f.data["filename"] for f in files] == ["img606.png", "sticker606.png"]
    await media.watch.wait_for(
        "message.sent", body="Track my order", author_id="messenger:psid-606"
    )

    wx.media["MEDIA606"] = (JPEG, "image/jpeg")
    wx.media["VOICE606"] = (AMR, "audio/amr")
    await media.wechat_push(media_xml("gh_fake", "openid_606", "image", "MEDIA606", 6061))
    await media.wechat_push(media_xml("gh_fake", "openid_606", "voice", "VOICE606", 6062))
    files = await media.watch.wait_for(
        "message.attachment_sent", count=2, author_id="wechat:openid_606"
    )
    assert [
        (f.data["content_type"], await media.stored(f.data["attachment_id"])) for f in files
    ] == [
        ("image/jpeg", JPEG),
        ("audio/amr", AMR),
    ]


async def test_a_platform_url_to_an_internal_address_is_never_fetched(media: Media) -> None:
    notification = media.messenger.attachment_notification("psid-609", "image", "x.png")
    attachment = notification["entry"][0]["messaging"][0]["message"]["attachments"][0]
    attachment["payload"]["url"] = "http://169.254.169.254/latest/meta-data/iam"
    assert (
        await media.messenger.post_webhook(media.messenger_url, notification)
    ).status_code == 200
    [note] = await media.watch.wait_for("message.sent", author_id="messenger:psid-609")
    assert note.data["body"].startswith("[image not received: refused address")
    assert media.watch.of("message.attachment_sent", author_id="messenger:psid-609") == []


async def test_attachment_urls_that_redirect_are_followed_through_the_guard(media: Media) -> None:
    """Meta's attachment URLs redirect to its CDN. A 302 used to be stored as the file (an
    empty octet-stream named after the URL); each hop is now followed, and checked like the
    first, up to a few."""
    fb = media.messenger
    fb.cdn["img610.png"] = (PNG, "image/png")
    fb.redirects["img610.png"] = fb.cdn_url("img610.png")
    fb.redirects["pic610.png"] = fb.cdn_url("img610.png")
    fb.redirects["metadata.png"] = "http://169.254.169.254/latest/meta-data/iam"
    fb.redirects["loop.png"] = fb.redirect_url("loop.png")
    fb.profiles["psid-610"] = {"first_name": "Lou", "last_name": "Pe", "pic": "pic610.png"}
    # a picture that cannot be fetched (a loop) took the name down with it
    fb.profiles["psid-612"] = {"first_name": "Mo", "last_name": "Ri", "pic": "loop.png"}
    for psid, name in (
        ("psid-610", "img610.png"),
        ("psid-611", "metadata.png"),
        ("psid-612", "loop.png"),
    ):
        notification = fb.attachment_notification(psid, "image", name)
        attachment = notification["entry"][0]["messaging"][0]["message"]["attachments"][0]
        attachment["payload"]["url"] = fb.redirect_url(name)
        assert (await fb.post_webhook(media.messenger_url, notification)).status_code == 200

    [file] = await media.watch.wait_for("message.attachment_sent", author_id="messenger:psid-610")
    assert (file.data["filename"], file.data["content_type"]) == ("img610.png", "image/png")
    assert await media.stored(file.data["attachment_id"]) == PNG
    [requested] = [
        e
        for e in media.watch.of("conversation.requested")
        if e.data["visitor"]["id"] == "messenger:psid-610"
    ]
    assert await media.stored(requested.data["visitor"]["avatar_attachment_id"]) == PNG
    for psid, reason in (("psid-611", "refused address"), ("psid-612", "too many redirects")):
        [note] = await media.watch.wait_for("message.sent", author_id=f"messenger:{psid}")
        assert note.data["body"].startswith(f"[image not received: {reason}"), note.data["body"]
        assert media.watch.of("message.attachment_sent", author_id=f"messenger:{psid}") == []
    [looped] = [  # requested before its message (awaited above) was sent
        e
        for e in media.watch.of("conversation.requested")
        if e.data["visitor"]["id"] == "messenger:psid-612"
    ]
    assert looped.data["visitor"]["name"] == "Mo Ri"
    assert looped.data["visitor"].get("avatar_attachment_id") is None


async def test_edits_and_blocks_are_recorded(media: Media) -> None:
    original = media.telegram.update(607, "I ordered 3 boxes")
    await media.telegram.queue_update(original)
    [sent] = await media.watch.wait_for("message.sent", body="I ordered 3 boxes")
    await media.telegram.queue_update(
        media.telegram.edit_update(607, original["message"]["message_id"], "I ordered 4 boxes")
    )
    [edited] = await media.watch.wait_for("message.edited", author_id="telegram:607")
    assert edited.data["message_id"] == sent.data["message_id"]
    assert edited.data["body"] == "I ordered 4 boxes"
    assert edited.data["conversation_id"] == sent.data["conversation_id"]
    await media.telegram.queue_update(media.telegram.member_update(607, "kicked"))
    [blocked] = await media.watch.wait_for("connector.user_blocked", platform_user_id="607")
    assert blocked.data["blocked"] is True
    assert blocked.data["conversation_id"] == sent.data["conversation_id"]

    fb = media.messenger
    first = fb.notification("psid-607", "wrong adress", mid="m_psid607_1")
    assert (await fb.post_webhook(media.messenger_url, first)).status_code == 200
    [fb_sent] = await media.watch.wait_for("message.sent", body="wrong adress")
    edit = fb.edit_notification("psid-607", "m_psid607_1", "wrong address")
    assert (await fb.post_webhook(media.messenger_url, edit)).status_code == 200
    [fb_edit] = await media.watch.wait_for("message.edited", author_id="messenger:psid-607")
    assert fb_edit.data["message_id"] == fb_sent.data["message_id"]
    assert fb_edit.data["body"] == "wrong address"


# --- profiles --------------------------------------------------------------------------------


async def test_profiles_give_each_customer_a_name_and_a_picture(media: Media) -> None:
    media.telegram.profile_photos[608] = [media.telegram.add_file(JPEG, "profile_photos/608.jpg")]
    media.messenger.profiles["psid-608"] = {
        "first_name": "Peter",
        "last_name": "Chang",
        "pic": "p608.jpg",
    }
    media.messenger.cdn["p608.jpg"] = (PNG, "image/png")
    media.wechat.users["openid_608"] = {"nickname": "Li Lei", "headimg": "h608"}
    media.wechat.headimgs["h608"] = JPEG
    await media.telegram_chat(608, "hi")
    await media.messenger_chat("psid-608", "hi")
    await media.wechat_chat("openid_608", "hi", 608)
    expected = {
        "telegram:608": ("Ann", JPEG),
        "messenger:psid-608": ("Peter Chang", PNG),
        "wechat:openid_608": ("Li Lei", JPEG),
    }
    for visitor_id, (name, picture) in expected.items():
        requested = [
            e
            for e in media.watch.of("conversation.requested")
            if e.data["visitor"]["id"] == visitor_id
        ]
        visitor = requested[0].data["visitor"]
        assert visitor["name"] == name
        assert await media.stored(visitor["avatar_attachment_id"]) == picture
