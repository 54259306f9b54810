"""Registers each webhook-mode Telegram bot with Telegram itself: ``setWebhook`` with the
connector's URL and ``secret_token``; ``deleteWebhook`` once it is removed. (A bot switched to
polling has its webhook deleted by the poller before its first ``getUpdates``.)

Without ``RELAYDESK_CONNECTORS_PUBLIC_URL`` (the address Telegram reaches this service at)
nothing can be registered: logged once per connector as ``telegram_webhook_not_registered``.
"""

import asyncio
import random
import time

import structlog

from connectors.config import Connector, ConnectorDirectory
from connectors.delivery import DeliveryError
from connectors.telegram import ALLOWED_UPDATES, TelegramClient

log = structlog.get_logger(__name__)

RESCAN_S = 1.0
MAX_BACKOFF_S = 60.0


def webhook_url(public_url: str, connector_id: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/telegram/{connector_id}"


def wants_webhook(connector: Connector) -> bool:
    return connector.platform == "telegram" and connector.public.get("mode", "webhook") == "webhook"


class TelegramWebhookRegistrar:
    def __init__(
        self,
        client: TelegramClient,
        directory: ConnectorDirectory,
        public_url: str | None,
        *,
        rescan_s: float = RESCAN_S,
    ) -> None:
        self._client = client
        self._directory = directory
        self._public_url = public_url
        self._rescan_s = rescan_s
        # connector id → the configuration registered (or found unregistrable) in this process
        self._done: dict[str, Connector] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._round()
            except Exception:
                log.exception("telegram_webhook_round_failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), self._rescan_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()

    async def _round(self) -> None:
        # a paused connector is not registered (an imported bot stays with its old system)
        wanted = {
            c.connector_id: c for c in self._directory.all() if wants_webhook(c) and not c.paused
        }
        for connector_id, registered in list(self._done.items()):
            if connector_id not in wanted:
                del self._done[connector_id]
                if self._directory.find(connector_id) is None:  # removed, not switched to polling
                    await self._delete(registered)
        for connector_id, connector in wanted.items():
            due = time.monotonic() >= self._retry_at.get(connector_id, 0.0)
            if self._done.get(connector_id) != connector and due:
                await self._register(connector)

    async def _register(self, connector: Connector) -> None:
        if not self._public_url:
            log.error(
                "telegram_webhook_not_registered",
                connector_id=connector.connector_id,
                explanation="set RELAYDESK_CONNECTORS_PUBLIC_URL (the https address Telegram"
                " reaches this service at), or use mode=polling",
            )
            self._done[connector.connector_id] = connector
            return
        params = {
            "url": webhook_url(self._public_url, connector.connector_id),
            "secret_token": connector.secrets["webhook_secret"],
            "allowed_updates": ALLOWED_UPDATES,
            "drop_pending_updates": False,
        }
        try:
            await self._client.call(connector, "setWebhook", params)
        except DeliveryError as exc:
            failures = self._failures.get(connector.connector_id, 0) + 1
            self._failures[connector.connector_id] = failures
            log.warning(
                "telegram_set_webhook_failed",
                connector_id=connector.connector_id,
                reason=exc.reason,
                failures=failures,
            )
            # a later round retries it, backing off so a refusal is not hammered
            backoff = min(MAX_BACKOFF_S, 0.5 * 2**failures) * (0.5 + random.random() / 2)
            self._retry_at[connector.connector_id] = time.monotonic() + backoff
            return
        self._failures.pop(connector.connector_id, None)
        self._done[connector.connector_id] = connector
        log.info("telegram_webhook_registered", connector_id=connector.connector_id)

    async def _delete(self, connector: Connector) -> None:
        try:
            await self._client.call(connector, "deleteWebhook", {"drop_pending_updates": False})
            log.info("telegram_webhook_deleted", connector_id=connector.connector_id)
        except DeliveryError as exc:
            log.warning(
                "telegram_delete_webhook_failed",
                connector_id=connector.connector_id,
                reason=exc.reason,
            )
