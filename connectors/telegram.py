"""Telegram Bot API: update parsing, sends (text, files, rating buttons), files, profiles."""

import json
from typing import Any

import httpx

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import (
    Inbound,
    InboundBlocked,
    InboundEdit,
    InboundMessage,
    InboundMoved,
    InboundRating,
    Profile,
)
from connectors.media import (
    MAX_INBOUND_BYTES,
    MB,
    FetchedFile,
    InboundMedia,
    OutboundFile,
    checked_type,
    download,
    too_large,
)
from connectors.secret_compare import matches
from connectors.shared_lines import contact_line, location_line

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CREDENTIAL_CODES = {401, 404}
# The update types asked for, by getUpdates and by setWebhook alike.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
RATE_PREFIX = "rate:"  # callback_data of the rating buttons: rate:<conversation_id>:<score>
PHOTO_LIMIT, FILE_LIMIT = 10 * MB, 50 * MB  # multipart uploads (Bot API, "Sending files")
# The send method and its file field by type; anything else goes as a document.
SEND_METHODS = {
    "image/png": ("sendPhoto", "photo"),
    "image/jpeg": ("sendPhoto", "photo"),
    "image/webp": ("sendPhoto", "photo"),
    "image/gif": ("sendAnimation", "animation"),
    "video/mp4": ("sendVideo", "video"),
    "audio/ogg": ("sendVoice", "voice"),
    "audio/mpeg": ("sendAudio", "audio"),
}
STATIC_FILE_TYPES = {"photo": "image/jpeg", "video": "video/mp4", "voice": "audio/ogg"}


def secret_token_ok(connector: Connector, header_value: str | None) -> bool:
    return matches(connector.secrets.get("webhook_secret", ""), header_value)


def parse_update(update: dict[str, Any]) -> Inbound | None:
    """A message (text, or files with a caption), an edit, a rating button press, the user
    blocking the bot, or a group's upgrade to a supergroup; anything else is acknowledged and
    ignored."""
    update_id = update.get("update_id")
    if not isinstance(update_id, int):
        return None
    for kind, parse in (
        ("message", _message),
        ("edited_message", _edit),
        ("callback_query", _callback),
        ("my_chat_member", _member),
    ):
        if isinstance(update.get(kind), dict):
            return parse(str(update_id), update[kind])
    return None


def _ids(message: dict[str, Any]) -> tuple[str, str] | None:
    chat, sender = _object(message.get("chat")), _object(message.get("from"))
    user_id = sender.get("id", chat.get("id"))
    if user_id is None or chat.get("id") is None:
        return None
    return str(user_id), chat_ref(message)  # a forum topic is a chat of its own


def _message(update_id: str, message: dict[str, Any]) -> InboundMessage | InboundMoved | None:
    ids = _ids(message)
    moved_to = message.get("migrate_to_chat_id")
    if ids is not None and isinstance(moved_to, int):  # the group became a supergroup
        return InboundMoved(update_id, ids[0], ids[1], str(moved_to))
    text = message.get("text", message.get("caption", ""))
    if ids is None or not isinstance(text, str):
        return None
    text = "\n".join(part for part in (text, _shared(message)) if part)
    media = _media(message)
    if not (text or media):
        return None
    return InboundMessage(
        update_id,
        ids[0],
        ids[1],
        text,
        _full_name(_object(message.get("from"))) or None,
        media,
        message_ref=f"{ids[1]}:{message.get('message_id')}",
        group_title=_group_title(_object(message.get("chat"))),
    )


def _group_title(chat: dict[str, Any]) -> str | None:
    """A group's or supergroup's title (the name its members know it by); None for a
    private chat."""
    if chat.get("type") not in ("group", "supergroup"):
        return None
    title = chat.get("title")
    return title if isinstance(title, str) and title.strip() else "Telegram group"


def _full_name(person: dict[str, Any]) -> str:
    parts = (person.get("first_name"), person.get("last_name"))
    return " ".join(part for part in parts if isinstance(part, str))


def _shared(message: dict[str, Any]) -> str | None:
    """A location (a venue is one with a name and an address) or a contact, as a line."""
    venue = _object(message.get("venue"))
    location = _object(venue.get("location") or message.get("location"))
    if location:
        return location_line(
            location.get("latitude"),
            location.get("longitude"),
            venue.get("title"),
            venue.get("address"),
        )
    contact = _object(message.get("contact"))
    if contact:
        return contact_line(_full_name(contact), contact.get("phone_number"))
    return None


def _media(message: dict[str, Any]) -> tuple[InboundMedia, ...]:
    number = message.get("message_id")
    photo = message.get("photo")
    largest = _object(photo[-1]) if isinstance(photo, list) and photo else {}
    if largest.get("file_id"):  # sizes come smallest first: the last is the original
        return (
            InboundMedia(str(largest["file_id"]), "photo", f"photo_{number}.jpg", "image/jpeg"),
        )
    for kind in ("document", "video", "voice", "audio", "video_note", "animation"):
        item = message.get(kind)
        if isinstance(item, dict) and item.get("file_id"):
            name = item.get("file_name") or f"{kind}_{number}"
            content_type = item.get("mime_type") or STATIC_FILE_TYPES.get(kind)
            return (InboundMedia(str(item["file_id"]), kind, str(name), content_type),)
    sticker = message.get("sticker")
    if isinstance(sticker, dict):
        # a static sticker is a WebP image; animated (.tgs) and video ones show their thumbnail
        animated = sticker.get("is_animated") or sticker.get("is_video")
        source = sticker.get("thumbnail") if animated else sticker
        if isinstance(source, dict) and source.get("file_id"):
            return (
                InboundMedia(str(source["file_id"]), "sticker", f"sticker_{number}.webp", None),
            )
    return ()


def _edit(update_id: str, message: dict[str, Any]) -> InboundEdit | None:
    ids = _ids(message)
    text = message.get("text", message.get("caption"))
    if ids is None or not isinstance(text, str):
        return None
    return InboundEdit(update_id, ids[0], ids[1], f"{ids[1]}:{message.get('message_id')}", text)


def _callback(update_id: str, query: dict[str, Any]) -> InboundRating | None:
    data, sender = query.get("data"), _object(query.get("from"))
    message = _object(query.get("message"))
    chat = (
        chat_ref(message)
        if _object(message.get("chat")).get("id") is not None
        else sender.get("id")
    )
    if not isinstance(data, str) or not data.startswith(RATE_PREFIX) or sender.get("id") is None:
        return None
    conversation_id, _, score = data.removeprefix(RATE_PREFIX).rpartition(":")
    if score not in {"1", "2", "3", "4", "5"} or not conversation_id:
        return None
    return InboundRating(
        update_id,
        str(sender["id"]),
        str(chat),
        int(score),
        conversation_id,
        callback_id=str(query.get("id", "")),
    )


def _member(update_id: str, change: dict[str, Any]) -> InboundBlocked | None:
    chat, sender = _object(change.get("chat")), _object(change.get("from"))
    status = _object(change.get("new_chat_member")).get("status")
    if chat.get("type") != "private" or sender.get("id") is None or status is None:
        return None  # groups: the bot was added or removed, not blocked by a customer
    return InboundBlocked(update_id, str(sender["id"]), str(chat["id"]), status == "kicked")


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def send_method(content_type: str, size: int) -> tuple[str, str]:
    """The Bot API method and file field for a file; a photo over 10 MB goes as a document."""
    method, field = SEND_METHODS.get(content_type, ("sendDocument", "document"))
    if method == "sendPhoto" and size > PHOTO_LIMIT:
        return "sendDocument", "document"
    return method, field


def chat_ref(message: dict[str, Any]) -> str:
    """Where a conversation lives: the chat, and in a forum supergroup the topic (its
    ``message_thread_id``), written ``chat:topic``; replies go back to the same place."""
    chat_id = str(_object(message.get("chat")).get("id"))
    topic = message.get("message_thread_id")
    if message.get("is_topic_message") and isinstance(topic, int):
        return f"{chat_id}:{topic}"
    return chat_id


def destination(ref: str) -> dict[str, int]:
    """``chat_id`` (and ``message_thread_id``) for a send to the chat ``ref`` names."""
    chat_id, _, topic = ref.partition(":")
    return {"chat_id": int(chat_id), **({"message_thread_id": int(topic)} if topic else {})}


class TelegramClient:
    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        self._http = http
        self._base = api_base.rstrip("/")

    async def call(
        self,
        connector: Connector,
        method: str,
        params: dict[str, Any],
        *,
        timeout: float = 10.0,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """A Bot API call: JSON, or multipart/form-data when it uploads ``files``."""
        url = f"{self._base}/bot{connector.secrets['bot_token']}/{method}"
        try:
            if files:
                form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
                response = await self._http.post(url, data=form, files=files, timeout=60.0)
            else:
                response = await self._http.post(url, json=params, timeout=timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        return _result(response)

    async def send_text(
        self, connector: Connector, chat_id: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        result = await self.call(
            connector, "sendMessage", {**destination(chat_id), "text": text}
        )  # at most 4096 characters: the deliverer splits longer replies (connectors/splitting.py)
        return str(result.get("message_id", ""))

    def check_file(self, content_type: str, size: int) -> None:
        if size > FILE_LIMIT:
            raise too_large("Telegram", "files", size, FILE_LIMIT)

    async def send_file(
        self,
        connector: Connector,
        chat_id: str,
        file: OutboundFile,
        *,
        last_inbound: float | None = None,
    ) -> str:
        method, field = send_method(file.content_type, len(file.content))
        result = await self.call(
            connector,
            method,
            destination(chat_id),
            files={field: (file.filename, file.content, file.content_type)},
        )
        return str(result.get("message_id", ""))

    async def send_rating_request(
        self,
        connector: Connector,
        chat_id: str,
        text: str,
        conversation_id: str,
        *,
        last_inbound: float | None = None,
    ) -> str:
        buttons = [
            {"text": "★" * score, "callback_data": f"{RATE_PREFIX}{conversation_id}:{score}"}
            for score in range(1, 6)
        ]
        params = {
            **destination(chat_id),
            "text": text,
            "reply_markup": {"inline_keyboard": [buttons]},
        }
        result = await self.call(connector, "sendMessage", params)
        return str(result.get("message_id", ""))

    async def send_typing(self, connector: Connector, chat_id: str) -> None:
        await self.call(connector, "sendChatAction", {**destination(chat_id), "action": "typing"})

    async def answer_rating(self, connector: Connector, rating: InboundRating) -> None:
        if rating.callback_id:  # stops the button's spinner in the user's app
            await self.call(
                connector,
                "answerCallbackQuery",
                {"callback_query_id": rating.callback_id, "text": "Thank you!"},
            )

    async def fetch_media(self, connector: Connector, media: InboundMedia) -> FetchedFile:
        content = await self._file(connector, media.ref)
        content_type = (
            checked_type(media.content_type, content)
            if media.content_type
            else _sticker_type(content)
        )
        return FetchedFile(media.filename or media.kind, content_type, content)

    async def profile(self, connector: Connector, user_id: str) -> Profile:
        """The user's current profile photo (getUserProfilePhotos, getFile); the name comes
        with every message."""
        photos = await self.call(
            connector, "getUserProfilePhotos", {"user_id": int(user_id), "limit": 1}
        )
        sizes = (photos.get("photos") or [[]])[0] if isinstance(photos, dict) else []
        if not sizes:
            return Profile()
        content = await self._file(connector, str(sizes[-1]["file_id"]))
        return Profile(
            avatar=FetchedFile("avatar.jpg", checked_type("image/jpeg", content), content)
        )

    async def _file(self, connector: Connector, file_id: str) -> bytes:
        """getFile, then the download URL it names (the Bot API serves at most 20 MB)."""
        info = await self.call(connector, "getFile", {"file_id": file_id})
        if int(info.get("file_size") or 0) > MAX_INBOUND_BYTES or not info.get("file_path"):
            raise DeliveryError("file too big for the Bot API to hand out", permanent=True)
        token = connector.secrets["bot_token"]
        content, _ = await download(self._http, f"{self._base}/file/bot{token}/{info['file_path']}")
        return content


def _sticker_type(content: bytes) -> str:
    for candidate in ("image/webp", "image/jpeg", "image/png"):
        if (found := checked_type(candidate, content)) == candidate:
            return found
    return checked_type(None, content)


def _result(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise DeliveryError(f"http {response.status_code}", permanent=False) from None
    if body.get("ok"):
        return body.get("result")
    code = int(body.get("error_code", response.status_code))
    description = str(body.get("description", ""))[:150]
    parameters = _object(body.get("parameters"))
    retry_after = parameters.get("retry_after")
    moved_to = parameters.get("migrate_to_chat_id")
    if code == 429:
        raise DeliveryError(
            f"429 {description}", permanent=False, retry_after=float(retry_after or 1)
        )
    # 5xx are transient; 400/401/403/404 (blocked, bad chat, revoked token) do not heal by retrying.
    # 401 Unauthorized and 404 Not Found (what a wrong bot token gets) refuse the bot itself.
    raise DeliveryError(
        f"{code} {description}",
        permanent=code < 500 and code != 409,
        credentials=code in CREDENTIAL_CODES,
        # a group upgraded to a supergroup: the same chat under a new id
        moved_to=str(moved_to) if isinstance(moved_to, int) else None,
    )
