"""The webhook HTTP endpoint: verify first, publish durably, then answer the platform."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential_jitter

from connectors import messenger, telegram, wechat
from connectors.config import Connector, ConnectorDirectory
from connectors.inbound import Inbound, InboundBridge
from connectors.wechat_crypto import WeChatCipher, WeChatCryptoError, signature_ok

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 256 * 1024
WECHAT_WINDOW_S = 300  # default of RELAYDESK_WECHAT_TIMESTAMP_WINDOW_S
TIMESTAMP_DIGITS = 12  # seconds since 1970, for the next 30,000 years
WECHAT_ANSWER_WITHIN_S = 4.0  # WeChat gives up at 5 s and shows the user an error
WECHAT_RETRY_FOR_S = 120.0


class BodyTooLarge(Exception):
    pass


async def read_capped(request: Request) -> bytes:
    """Refuse oversized bodies while reading, before they are buffered whole."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


Publisher = Callable[[list[tuple[Connector, Inbound]]], Awaitable[Response]]


def build_app(
    directory: ConnectorDirectory,
    bridge: InboundBridge,
    *,
    wechat_window_s: float = WECHAT_WINDOW_S,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Args:
    wechat_window_s: how far a WeChat request's signed ``timestamp`` may be from now.
    clock: now, in seconds since 1970.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.background = set()  # WeChat publishes still running; the service cancels them on stop

    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, __: BodyTooLarge) -> Response:
        return JSONResponse({"error": "body too large"}, status_code=413)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def publish_all(updates: list[tuple[Connector, Inbound]]) -> Response:
        """Each update as its connector's, in order; 503 if one fails (the platform resends
        the whole body, and the ones already published are absorbed by the dedupe)."""
        for connector, message in updates:
            try:
                await bridge.accept(connector, message)
            except Exception:
                log.exception("connector_inbound_failed", connector_id=connector.connector_id)
                return JSONResponse(
                    {"error": "temporarily unavailable"}, status_code=503
                )  # the platform retries
        return JSONResponse({"ok": True})

    _add_telegram(app, directory, publish_all)
    _add_messenger(app, directory, publish_all)
    _add_wechat(app, directory, bridge, WeChatClock(wechat_window_s, clock))
    return app


def _malformed(platform: str, connector_id: str, error: str) -> Response:
    """Authentic but unreadable: 400, nothing published (the body is not logged)."""
    log.warning(
        "connector_webhook_malformed",
        platform=platform,
        connector_id=connector_id[:64],
        error=error,
    )
    return JSONResponse({"error": error}, status_code=400)


def _forbidden(platform: str, connector_id: str) -> Response:
    log.warning("connector_webhook_rejected", platform=platform, connector_id=connector_id[:64])
    return JSONResponse({"error": "forbidden"}, status_code=403)


def _add_telegram(app: FastAPI, directory: ConnectorDirectory, publish_all: Publisher) -> None:
    @app.post("/webhooks/telegram/{connector_id}")
    async def telegram_update(connector_id: str, request: Request) -> Response:
        connector = directory.get(connector_id, "telegram")
        if connector is None or not telegram.secret_token_ok(
            connector, request.headers.get(telegram.SECRET_HEADER)
        ):
            return _forbidden("telegram", connector_id)
        try:
            update = json.loads(await read_capped(request))
        except ValueError:
            return JSONResponse({"error": "invalid json"}, status_code=400)
        message = telegram.parse_update(update) if isinstance(update, dict) else None
        return await publish_all([(connector, message)] if message else [])


def _add_messenger(app: FastAPI, directory: ConnectorDirectory, publish_all: Publisher) -> None:
    @app.get("/webhooks/messenger/{connector_id}")
    async def messenger_verify(connector_id: str, request: Request) -> Response:
        connector = directory.get(connector_id, "messenger")
        q = request.query_params
        if connector is None or not messenger.verify_token_ok(
            connector, q.get("hub.mode"), q.get("hub.verify_token")
        ):
            return PlainTextResponse("forbidden", status_code=403)
        return PlainTextResponse(q.get("hub.challenge", ""))

    @app.post("/webhooks/messenger/{connector_id}")
    async def messenger_event(connector_id: str, request: Request) -> Response:
        connector = directory.get(connector_id, "messenger")
        raw = await read_capped(request)  # verified over these exact bytes, before parsing
        signature = request.headers.get(messenger.SIGNATURE_HEADER)
        if connector is None or not messenger.signature_ok(connector, raw, signature):
            return _forbidden("messenger", connector_id)
        try:
            found = messenger.parse_notification(json.loads(raw))
        except messenger.MalformedNotification as exc:
            return _malformed("messenger", connector_id, str(exc))
        except ValueError:
            return _malformed("messenger", connector_id, "invalid json")
        return await publish_all(_by_page(directory, connector, raw, signature, found))


def _by_page(
    directory: ConnectorDirectory,
    received_by: Connector,
    raw: bytes,
    signature: str | None,
    found: list[messenger.PageInbound],
) -> list[tuple[Connector, Inbound]]:
    """Each update with the connector of the page it was sent to (Meta posts all pages of an
    app to one URL); one for a page no connector of this tenant serves is left out, and 200
    still answers it (Meta would resend anything else)."""
    routed = []
    for update in found:
        owner = messenger.connector_for_page(
            received_by, update.page_id, directory.all(), raw, signature
        )
        if owner is None:
            log.warning(
                "connector_webhook_other_page",
                platform="messenger",
                connector_id=received_by.connector_id,
                page_id=(update.page_id or "")[:64],
            )
            continue
        routed.append((owner, update.inbound))
    return routed


class WeChatClock:
    """WeChat signs ``timestamp`` with each request but nothing else bounds a replay: a request
    captured once (a URL verification, a plain-mode push) would be good for ever. Requests
    stamped further than ``window_s`` from now are refused; within the window, replays of a
    message are absorbed by the MsgId dedupe (48 h)."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s, self._clock = window_s, clock

    def fresh(self, timestamp: str | None) -> bool:
        # ASCII digits only: int() also reads spaces, signs, underscores and other scripts' digits
        if not timestamp or len(timestamp) > TIMESTAMP_DIGITS:
            return False
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        return abs(self._clock() - int(timestamp)) <= self.window_s


def _add_wechat(
    app: FastAPI, directory: ConnectorDirectory, bridge: InboundBridge, clock: WeChatClock
) -> None:
    @app.get("/webhooks/wechat/{connector_id}")
    async def wechat_verify(connector_id: str, request: Request) -> Response:
        connector = directory.get(connector_id, "wechat")
        q = request.query_params
        if (
            connector is None
            or not clock.fresh(q.get("timestamp"))
            or not signature_ok(
                q.get("signature"),
                connector.secrets.get("token", ""),
                q.get("timestamp", ""),
                q.get("nonce", ""),
            )
        ):
            return _forbidden("wechat", connector_id)
        return PlainTextResponse(q.get("echostr", ""))

    @app.post("/webhooks/wechat/{connector_id}")
    async def wechat_message(connector_id: str, request: Request) -> Response:
        connector = directory.get(connector_id, "wechat")
        raw = await read_capped(request)
        try:
            query = dict(request.query_params)
            message = (
                _wechat_inbound(connector, query, raw)
                if connector and clock.fresh(query.get("timestamp"))
                else False
            )
        except MalformedXml:
            return _malformed("wechat", connector_id, "malformed xml")
        if connector is None or message is False:
            return _forbidden("wechat", connector_id)
        if message is not None and not isinstance(message, bool):
            background: set[asyncio.Task[bool]] = app.state.background
            task = asyncio.create_task(_accept_with_retries(bridge, connector, message))
            background.add(task)
            task.add_done_callback(_log_background_failure(background, connector_id))
            # after 4 s we answer anyway and the publish goes on in the background
            await asyncio.wait([task], timeout=WECHAT_ANSWER_WITHIN_S)
        return PlainTextResponse("success")


async def _accept_with_retries(
    bridge: InboundBridge, connector: Connector, message: Inbound
) -> bool:
    """WeChat never resends after our ``success``, so we keep trying ourselves for a while."""
    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        stop=stop_after_delay(WECHAT_RETRY_FOR_S),
        reraise=True,
    ):
        with attempt:
            return await bridge.accept(connector, message)
    raise AssertionError("unreachable")


def _log_background_failure(tasks: set, connector_id: str):  # type: ignore[no-untyped-def,type-arg]
    def done(task: asyncio.Task) -> None:  # type: ignore[type-arg]
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "connector_inbound_failed",
                platform="wechat",
                connector_id=connector_id,
                error=type(task.exception()).__name__,
            )

    return done


class MalformedXml(Exception):
    """The request's signatures are right but its XML (outer or decrypted) does not parse."""


def _wechat_inbound(
    connector: Connector, query: dict[str, str], raw: bytes
) -> Inbound | bool | None:
    """The message, None for nothing to publish, False for a forged or undecryptable request.

    Raises ``MalformedXml`` for a correctly signed request whose XML is broken.
    """
    token, timestamp, nonce = (
        connector.secrets.get("token", ""),
        query.get("timestamp", ""),
        query.get("nonce", ""),
    )
    if not signature_ok(query.get("signature"), token, timestamp, nonce):
        return False
    safe = query.get("encrypt_type") == "aes"
    if not safe and connector.public.get("plaintext_allowed") != "true":
        return False  # plain mode leaves the body unsigned: only when the admin chose it
    fields = _xml(raw)
    if safe:
        encrypted = fields.get("Encrypt", "")
        if not signature_ok(query.get("msg_signature"), token, timestamp, nonce, encrypted):
            return False
        try:
            decrypted = WeChatCipher(
                connector.secrets["encoding_aes_key"], connector.public["app_id"]
            ).decrypt(encrypted)
        except (WeChatCryptoError, KeyError):
            return False
        fields = _xml(decrypted.encode())
    return wechat.to_inbound(fields)


def _xml(raw: bytes) -> dict[str, str]:
    try:
        return wechat.parse_xml(raw)
    except (
        ValueError,
        SyntaxError,
    ):  # ParseError is a SyntaxError; defusedxml's refusals are ValueErrors
        raise MalformedXml from None
