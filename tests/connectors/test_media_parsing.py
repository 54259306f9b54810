"""Platform updates of unexpected shapes are ignored, never raised: a parser that raises on an
update stops Telegram polling at that update for good (its offset never moves past it)."""

from typing import Any

import httpx
import pytest

from connectors.inbound import InboundBlocked, InboundEdit, InboundMessage, InboundRating
from connectors.messenger import parse_notification
from connectors.telegram import parse_update
from connectors.wechat import WeChatClient, to_inbound
from relaydesk.net_guard import GuardedTransport, TargetPolicy

ODD_TELEGRAM: list[dict[str, Any]] = [
    {"update_id": 1, "message": {"chat": "x", "from": 5, "photo": [{}]}},
    {"update_id": 2, "message": {"chat": {"id": 1}, "photo": ["not a size"]}},
    {"update_id": 3, "message": {"chat": {"id": 1}, "document": {"file_name": "no id"}}},
    {"update_id": 4, "message": {"chat": {"id": 1}, "sticker": {"is_animated": True}}},
    {"update_id": 5, "edited_message": {"chat": {"id": 1}}},
    {"update_id": 6, "callback_query": {"from": {"id": 1}, "data": "rate:c1:9"}},
    {"update_id": 7, "callback_query": {"from": "x", "message": 3, "data": "rate:c1:2"}},
    {"update_id": 8, "my_chat_member": {"chat": [], "new_chat_member": "kicked"}},
    {"update_id": 9, "my_chat_member": {"chat": {"id": -100, "type": "supergroup"}}},
    {"update_id": "10", "message": {"chat": {"id": 1}, "text": "id is a string"}},
]


@pytest.mark.parametrize("update", ODD_TELEGRAM)
def test_odd_telegram_updates_are_ignored(update: dict[str, Any]) -> None:
    assert parse_update(update) is None


def test_telegram_kinds_are_told_apart() -> None:
    chat = {"id": 42, "type": "private"}
    user = {"id": 42, "first_name": "Ann", "last_name": "Lee"}
    photo = parse_update(
        {
            "update_id": 1,
            "message": {
                "message_id": 7,
                "chat": chat,
                "from": user,
                "photo": [{"file_id": "small"}, {"file_id": "big"}],
                "caption": "look",
            },
        }
    )
    assert isinstance(photo, InboundMessage) and photo.text == "look"
    assert [m.ref for m in photo.media] == ["big"] and photo.user_name == "Ann Lee"
    assert photo.message_ref == "42:7"
    edit = parse_update(
        {"update_id": 2, "edited_message": {"message_id": 7, "chat": chat, "text": "new"}}
    )
    assert isinstance(edit, InboundEdit) and edit.message_ref == "42:7"
    press = parse_update(
        {"update_id": 3, "callback_query": {"id": "q", "from": user, "data": "rate:c1:3"}}
    )
    assert isinstance(press, InboundRating) and (press.conversation_id, press.score) == ("c1", 3)
    block = parse_update(
        {
            "update_id": 4,
            "my_chat_member": {"chat": chat, "from": user, "new_chat_member": {"status": "kicked"}},
        }
    )
    assert isinstance(block, InboundBlocked) and block.blocked


def test_odd_messenger_attachments_are_skipped() -> None:
    body = {
        "object": "page",
        "entry": [
            {
                "messaging": [
                    {"sender": {"id": "p"}, "message": {"mid": "m1", "attachments": "x"}},
                    {"sender": {"id": "p"}, "message": {"mid": "m2", "attachments": [1, {}]}},
                    {
                        "sender": {"id": "p"},
                        "message": {"mid": "m3", "attachments": [{"payload": "url"}]},
                    },
                    {"sender": {"id": "p"}, "postback": {"payload": "rate:c:6"}},
                    {"sender": {"id": "p"}, "message_edit": {"mid": "m1"}},
                ]
            }
        ],
    }
    assert parse_notification(body) == []


def test_wechat_follow_events_and_media() -> None:
    gone = to_inbound({"MsgType": "event", "Event": "unsubscribe", "FromUserName": "o1"})
    assert isinstance(gone, InboundBlocked) and gone.blocked
    image = to_inbound({"MsgType": "image", "MsgId": "9", "FromUserName": "o1", "MediaId": "M"})
    assert isinstance(image, InboundMessage) and image.media[0].ref == "M"
    assert to_inbound({"MsgType": "image", "MsgId": "9", "FromUserName": "o1"}) is None
    # a location without its coordinates says nothing readable
    assert to_inbound({"MsgType": "location", "MsgId": "9", "FromUserName": "o1"}) is None


async def test_wechat_head_images_named_with_http_are_fetched_over_https() -> None:
    """WeChat's user/info gives ``http://thirdwx.qlogo.cn/…``; the SSRF guard refuses plain
    http to the internet, so the same URL is fetched over https (never over http)."""
    seen: list[str] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.headers['host']}{request.url.path}")
        return httpx.Response(
            200, content=b"\xff\xd8\xff\xe0jpeg", headers={"content-type": "image/jpeg"}
        )

    async def resolver(host: str, port: int) -> list[str]:
        return ["203.0.114.7"]  # a public address: the guard checks it, then connects there

    policy = TargetPolicy(resolver=resolver, https_only=False)
    async with httpx.AsyncClient(
        transport=GuardedTransport(policy, httpx.MockTransport(cdn))
    ) as fetch:
        client = WeChatClient(fetch, "https://api.weixin.qq.com", fetch)
        content, _ = await client._head_image("http://thirdwx.qlogo.cn/mmopen/abc/132")
    assert content.startswith(b"\xff\xd8") and seen == ["https://thirdwx.qlogo.cn/mmopen/abc/132"]


# --- locations, venues, contacts and links: a readable line, never dropped --------------------


def telegram_text(message: dict[str, Any]) -> str:
    chat, user = {"id": 42, "type": "private"}, {"id": 42, "first_name": "Ann"}
    parsed = parse_update(
        {"update_id": 1, "message": {"message_id": 7, "chat": chat, "from": user, **message}}
    )
    assert isinstance(parsed, InboundMessage), message
    return parsed.text


def test_telegram_locations_venues_and_contacts_arrive_as_lines() -> None:
    berlin = {"latitude": 52.520008, "longitude": 13.404954}
    assert telegram_text({"location": berlin}) == "📍 Location: 52.520008, 13.404954"
    venue = {"location": berlin, "title": "Café Eins", "address": "Unter den Linden 1"}
    assert telegram_text({"location": berlin, "venue": venue}) == (
        "📍 Location: 52.520008, 13.404954 (Café Eins, Unter den Linden 1)"
    )
    contact = {"phone_number": "+49 30 1234567", "first_name": "Ann", "last_name": "Lee"}
    assert telegram_text({"contact": contact}) == "👤 Contact: Ann Lee, +49 30 1234567"
    odd = {"location": {"latitude": "north", "longitude": None}}
    assert parse_update({"update_id": 2, "message": {"chat": {"id": 1}, **odd}}) is None


def messenger_texts(message: dict[str, Any]) -> list[str]:
    event = {"sender": {"id": "p"}, "recipient": {"id": "page"}, "message": {"mid": "m", **message}}
    found = parse_notification({"object": "page", "entry": [{"id": "page", "messaging": [event]}]})
    return [f.inbound.text for f in found if isinstance(f.inbound, InboundMessage)]


def test_messenger_locations_and_shared_links_arrive_as_lines() -> None:
    location = {
        "type": "location",
        "title": "Pinned location",
        "payload": {"coordinates": {"lat": 52.52, "long": 13.405}},
    }
    assert messenger_texts({"attachments": [location]}) == [
        "📍 Location: 52.52, 13.405 (Pinned location)"
    ]
    link = {"type": "fallback", "title": "Our order page", "url": "https://shop.example/o/42"}
    assert messenger_texts({"text": "look", "attachments": [link]}) == [
        "look\n🔗 Our order page https://shop.example/o/42"
    ]


def wechat_text(kind: str, **fields: str) -> str:
    parsed = to_inbound({"MsgId": "9", "FromUserName": "o1", "MsgType": kind, **fields})
    assert isinstance(parsed, InboundMessage), fields
    return parsed.text


def test_wechat_locations_and_links_arrive_as_lines() -> None:
    place = {"Location_X": "23.134521", "Location_Y": "113.358803", "Label": "广州市天河区"}
    assert wechat_text("location", Scale="20", **place) == (
        "📍 Location: 23.134521, 113.358803 (广州市天河区)"
    )
    link = {"Title": "订单", "Description": "第42号", "Url": "https://shop.example/o/42"}
    assert wechat_text("link", **link) == "🔗 订单 https://shop.example/o/42"
