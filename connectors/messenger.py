"""Messenger Platform: verification handshake, X-Hub-Signature-256, webhook events (messages
with attachments, quick replies, postbacks, edits), Send API (text, files, quick replies),
User Profile API."""

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import Inbound, InboundEdit, InboundMessage, InboundRating, Profile
from connectors.media import (
    MB,
    FetchedFile,
    InboundMedia,
    OutboundFile,
    checked_type,
    download,
    profile_picture,
    too_large,
)
from connectors.secret_compare import matches
from connectors.shared_lines import link_line, location_line

SIGNATURE_HEADER = "X-Hub-Signature-256"
WINDOW_S = 24 * 3600
TRANSIENT_CODES = {1200, 2, 4, 613}  # Meta: temporary failure, unexpected, app/API rate limits
FILE_LIMIT = 25 * MB  # Send API attachments, any type
RATE_PREFIX = "rate:"  # quick reply payload of the rating request: rate:<conversation_id>:<score>
EVENT_OBJECTS = ("sender", "recipient", "message", "postback", "message_edit")
# The page itself is refused: 190 invalid/expired access token, 200 missing permission
# (pages_messaging), 10 with no subcode (the app lacks the permission).
CREDENTIAL_CODES = {190, 200}


def signature_ok(connector: Connector, raw_body: bytes, header_value: str | None) -> bool:
    """HMAC-SHA256 of the raw bytes (Meta signs its escaped wire form; never re-serialize)."""
    secret = connector.secrets.get("app_secret", "")
    if not secret or not header_value or not header_value.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return matches(expected, header_value.removeprefix("sha256="))


def verify_token_ok(connector: Connector, mode: str | None, token: str | None) -> bool:
    return mode == "subscribe" and matches(connector.secrets.get("verify_token", ""), token)


class MalformedNotification(ValueError):
    """Signed, but not the documented ``{"object", "entry": [{"messaging": [{..}]}]}`` shape."""


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _check_shape(body: Any) -> None:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("object"), str)
        or not _objects(body.get("entry"))
    ):
        raise MalformedNotification(
            "expected an object with 'object' and a list of 'entry' objects"
        )
    for entry in body["entry"]:
        if not _objects(entry.get("messaging", [])):
            raise MalformedNotification("'messaging' must be a list of objects")
        for event in entry.get("messaging", []):
            if any(key in event and not isinstance(event[key], dict) for key in EVENT_OBJECTS):
                raise MalformedNotification(f"{', '.join(EVENT_OBJECTS)} must be objects")


@dataclass(frozen=True)
class PageInbound:
    """One update and the page it was sent to (None: the notification does not say)."""

    page_id: str | None
    inbound: Inbound


def parse_notification(body: Any) -> list[PageInbound]:
    """Every message, quick reply, postback and edit in every entry, with its page; echoes of
    our own sends are dropped (no loops).

    Raises ``MalformedNotification`` for a body that is not the documented shape: a type the
    code would trip over is refused as a whole (400), never half published.
    """
    _check_shape(body)
    if body.get("object") != "page":
        return []
    found = []
    for entry in body["entry"]:
        for event in entry.get("messaging", []):
            sender = (event.get("sender") or {}).get("id")
            parsed = _event(str(sender), event) if sender else None
            if parsed is not None:
                found.append(PageInbound(_page_of(entry, event), parsed))
    return found


def _page_of(entry: dict[str, Any], event: dict[str, Any]) -> str | None:
    """The entry's id is its page (Meta); a message's recipient is the page too."""
    page = entry.get("id") or (event.get("recipient") or {}).get("id")
    return str(page) if isinstance(page, str | int) and page != "" else None


def connector_for_page(
    received_by: Connector,
    page_id: str | None,
    connectors: Iterable[Connector],
    raw_body: bytes,
    signature: str | None,
) -> Connector | None:
    """Whose update this is. Meta posts every page of an app to the app's one callback URL,
    so an entry reaching one page's connector may be for a sibling page: it is that page's
    connector's when that connector is of the same tenant and the body's signature checks
    with its app secret too (the same app). None: no such connector — not this one's either
    (its conversation and its token would answer another page's user)."""
    if page_id is None or page_id == received_by.public.get("page_id"):
        return received_by
    for candidate in connectors:
        if (
            candidate.platform == "messenger"
            and candidate.tenant == received_by.tenant
            and candidate.public.get("page_id") == page_id
            and signature_ok(candidate, raw_body, signature)
        ):
            return candidate
    return None


def _event(psid: str, event: dict[str, Any]) -> Inbound | None:
    if "message_edit" in event:
        edit = event["message_edit"]
        if not edit.get("mid") or not isinstance(edit.get("text"), str):
            return None
        # each edit of a message is its own update: num_edit tells them apart
        key = f"{edit['mid']}#edit{edit.get('num_edit', '')}"
        return InboundEdit(key, psid, psid, str(edit["mid"]), edit["text"])
    if "postback" in event:
        postback = event["postback"]
        key = str(postback.get("mid") or f"postback:{psid}:{event.get('timestamp')}")
        payload = postback.get("payload")
        if (rating := _rating(key, psid, payload)) is not None:
            return rating
        title = postback.get("title")
        return InboundMessage(key, psid, psid, title) if isinstance(title, str) and title else None
    message = event.get("message") or {}
    if message.get("is_echo") or not message.get("mid"):
        return None
    mid = str(message["mid"])
    quick = message.get("quick_reply")
    if isinstance(quick, dict) and (rating := _rating(mid, psid, quick.get("payload"))):
        return rating
    text = message["text"] if isinstance(message.get("text"), str) else ""
    text = "\n".join(part for part in (text, *_shared(message)) if part)
    media = _media(message)
    if not (text or media):
        return None
    return InboundMessage(mid, psid, psid, text, media=media, message_ref=mid)


def _media(message: dict[str, Any]) -> tuple[InboundMedia, ...]:
    found = []
    attachments = message.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        if not isinstance(payload, dict):
            continue
        url = payload.get("url")
        kind = "sticker" if payload.get("sticker_id") else attachment.get("type")
        if isinstance(url, str) and kind in {"image", "video", "audio", "file", "sticker"}:
            name = urlsplit(url).path.rsplit("/", 1)[-1] or str(kind)
            found.append(InboundMedia(url, str(kind), name[:200]))
    return tuple(found)


def _shared(message: dict[str, Any]) -> list[str]:
    """Locations and shared links (``fallback`` attachments), each as a line."""
    attachments = message.get("attachments")
    found = (_shared_line(_dict(a)) for a in (attachments if isinstance(attachments, list) else []))
    return [line for line in found if line]


def _shared_line(attachment: dict[str, Any]) -> str | None:
    payload = _dict(attachment.get("payload"))
    if attachment.get("type") == "location":
        at = _dict(payload.get("coordinates"))
        return location_line(at.get("lat"), at.get("long"), attachment.get("title"))
    if attachment.get("type") == "fallback":
        # Meta has sent the link as "url", "URL" and inside the payload
        url = attachment.get("url") or attachment.get("URL") or payload.get("url")
        return link_line(attachment.get("title") or payload.get("title"), url)
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rating(key: str, psid: str, payload: object) -> InboundRating | None:
    if not isinstance(payload, str) or not payload.startswith(RATE_PREFIX):
        return None
    conversation_id, _, score = payload.removeprefix(RATE_PREFIX).rpartition(":")
    if score not in {"1", "2", "3", "4", "5"} or not conversation_id:
        return None
    return InboundRating(key, psid, psid, int(score), conversation_id)


def attachment_type(content_type: str) -> str:
    """The Send API's attachment type for a file."""
    major = content_type.split("/")[0]
    return major if major in {"image", "video", "audio"} else "file"


def messaging(connector: Connector, last_inbound: float | None, now: float) -> dict[str, str]:
    """``messaging_type`` (and tag) for a reply: ``RESPONSE`` within 24 h of the user's last
    message; after that only the ``HUMAN_AGENT`` tag, which Meta allows for pages approved for
    it (7 days) — so only when the connector's ``human_agent_tag`` is ``"true"``; otherwise the
    reply fails at once (the platform would refuse it: 10/2018278) and waits for the user."""
    if last_inbound is not None and now - last_inbound < WINDOW_S:
        return {"messaging_type": "RESPONSE"}
    if connector.public.get("human_agent_tag") == "true":
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    raise DeliveryError(
        "outside Messenger's 24-hour window (the HUMAN_AGENT tag is not enabled for this page)",
        permanent=True,
    )


class MessengerClient:
    """Args:
    http: for the Graph API (the configured base).
    fetch: for URLs the platform's payloads name (attachments, profile pictures): built on
        the SSRF guard (relaydesk/net_guard.py), since a webhook body picks them.
    """

    def __init__(self, http: httpx.AsyncClient, api_base: str, fetch: httpx.AsyncClient) -> None:
        self._http = http
        self._fetch = fetch
        self._base = api_base.rstrip("/")

    async def send_text(
        self, connector: Connector, psid: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        # at most 2000 characters: the deliverer splits longer replies (connectors/splitting.py)
        payload: dict[str, Any] = {"recipient": {"id": psid}, "message": {"text": text}}
        payload.update(messaging(connector, last_inbound, time.time()))
        result = await self._post(connector, payload)
        return str(result.get("message_id", ""))

    def check_file(self, content_type: str, size: int) -> None:
        if size > FILE_LIMIT:
            raise too_large("Messenger", "files", size, FILE_LIMIT)

    async def send_file(
        self,
        connector: Connector,
        psid: str,
        file: OutboundFile,
        *,
        last_inbound: float | None = None,
    ) -> str:
        """Uploaded with the message (multipart ``filedata``), as the Send API documents."""
        attachment = {"type": attachment_type(file.content_type), "payload": {"is_reusable": False}}
        form = {
            "recipient": json.dumps({"id": psid}),
            "message": json.dumps({"attachment": attachment}),
            **messaging(connector, last_inbound, time.time()),
        }
        result = await self._post(
            connector,
            form=form,
            files={"filedata": (file.filename, file.content, file.content_type)},
        )
        return str(result.get("message_id", ""))

    async def send_rating_request(
        self,
        connector: Connector,
        psid: str,
        text: str,
        conversation_id: str,
        *,
        last_inbound: float | None = None,
    ) -> str:
        replies = [
            {
                "content_type": "text",
                "title": "★" * score,
                "payload": f"{RATE_PREFIX}{conversation_id}:{score}",
            }
            for score in range(1, 6)
        ]
        payload = {"recipient": {"id": psid}, "message": {"text": text, "quick_replies": replies}}
        result = await self._post(
            connector, {**payload, **messaging(connector, last_inbound, time.time())}
        )
        return str(result.get("message_id", ""))

    async def answer_rating(self, connector: Connector, rating: InboundRating) -> None:
        return None  # a quick reply needs no answer

    async def fetch_media(self, connector: Connector, media: InboundMedia) -> FetchedFile:
        content, headers = await download(self._fetch, media.ref)
        declared = headers.get("content-type") or media.content_type
        return FetchedFile(media.filename or media.kind, checked_type(declared, content), content)

    async def profile(self, connector: Connector, psid: str) -> Profile:
        """User Profile API: name and profile picture (its URL fetched through the guard)."""
        try:
            response = await self._http.get(
                f"{self._base}/{psid}",
                params={
                    "fields": "first_name,last_name,profile_pic",
                    "access_token": connector.secrets["page_token"],
                },
                timeout=10.0,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        found = _graph_result(response)
        name = " ".join(
            str(found[k]) for k in ("first_name", "last_name") if isinstance(found.get(k), str)
        )
        picture = found.get("profile_pic")
        avatar = None
        if isinstance(picture, str):
            avatar = await profile_picture(lambda: download(self._fetch, picture))
        return Profile(name or None, avatar)

    async def send_typing(self, connector: Connector, psid: str) -> None:
        await self._post(connector, {"recipient": {"id": psid}, "sender_action": "typing_on"})

    async def _post(
        self,
        connector: Connector,
        payload: dict[str, Any] | None = None,
        *,
        form: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        url = f"{self._base}/{connector.public.get('page_id', 'me')}/messages"
        try:
            response = await self._http.post(
                url,
                params={"access_token": connector.secrets["page_token"]},
                json=payload,
                data=form,
                files=files,
                timeout=60.0 if files else 10.0,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        return _graph_result(response)


def _graph_result(response: httpx.Response) -> dict[str, Any]:
    """The Graph API's answer, or a DeliveryError from its error object."""
    try:
        body = response.json()
    except ValueError:
        raise DeliveryError(f"http {response.status_code}", permanent=False) from None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code < 400 and not error:
        return dict(body)
    if not isinstance(error, dict):
        raise DeliveryError(f"http {response.status_code}", permanent=response.status_code < 500)
    code = int(error.get("code", 0))
    reason = f"{code}/{error.get('error_subcode', '')} {str(error.get('message', ''))[:150]}"
    raise DeliveryError(
        reason,
        permanent=code not in TRANSIENT_CODES and response.status_code < 500,
        credentials=code in CREDENTIAL_CODES,
    )
