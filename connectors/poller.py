"""Telegram long polling for connectors configured with ``mode=polling``.

The offset advances only after every update of a batch was durably published, so a crash or
a cut connection replays the batch (absorbed by the update_id dedupe) and loses nothing.
"""

import asyncio
import random

import structlog

from connectors.config import Connector, ConnectorDirectory
from connectors.delivery import DeliveryError
from connectors.inbound import InboundBridge
from connectors.telegram import ALLOWED_UPDATES, TelegramClient, parse_update

log = structlog.get_logger(__name__)

POLL_TIMEOUT_S = 25
RESCAN_S = 1.0
MAX_BACKOFF_S = 30.0


class TelegramPoller:
    """One polling task per connector in polling mode; started and stopped as config changes."""

    def __init__(
        self,
        client: TelegramClient,
        bridge: InboundBridge,
        directory: ConnectorDirectory,
        *,
        poll_timeout_s: int = POLL_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._bridge = bridge
        self._directory = directory
        self._poll_timeout_s = poll_timeout_s
        self._tasks: dict[str, tuple[Connector, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            wanted = {
                c.connector_id: c
                for c in self._directory.all()
                if c.platform == "telegram" and c.public.get("mode") == "polling" and not c.paused
            }
            for connector_id, (connector, task) in list(self._tasks.items()):
                if wanted.get(connector_id) != connector or task.done():
                    task.cancel()
                    del self._tasks[connector_id]
            for connector_id, connector in wanted.items():
                if connector_id not in self._tasks:
                    self._tasks[connector_id] = (
                        connector,
                        asyncio.create_task(self._poll(connector)),
                    )
            try:
                await asyncio.wait_for(self._stopping.wait(), RESCAN_S)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
        for _, task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in self._tasks.values()), return_exceptions=True)

    async def _poll(self, connector: Connector) -> None:
        offset: int | None = None
        failures = 0
        await self._delete_webhook(connector)
        while True:
            try:
                # edits, rating buttons and "blocked by the user" too, not just messages
                params = {"timeout": self._poll_timeout_s, "allowed_updates": ALLOWED_UPDATES}
                if offset is not None:
                    params["offset"] = offset
                updates = await self._client.call(
                    connector, "getUpdates", params, timeout=self._poll_timeout_s + 10
                )
                for update in updates:
                    message = parse_update(update)
                    if message is not None:
                        await self._bridge.accept(connector, message)
                    offset = max(
                        offset or 0, int(update["update_id"]) + 1
                    )  # only after the durable publish
                failures = 0
            except DeliveryError as exc:
                failures += 1
                if exc.reason.startswith("409"):
                    log.error(
                        "telegram_poll_conflict",
                        connector_id=connector.connector_id,
                        explanation=(
                            "another getUpdates poller uses this bot token, or a webhook is set;"
                            " run one poller per token"
                        ),
                    )
                else:
                    log.warning(
                        "telegram_poll_failed",
                        connector_id=connector.connector_id,
                        reason=exc.reason,
                        failures=failures,
                    )
                await asyncio.sleep(exc.retry_after or _backoff(failures))
            except Exception:
                # RabbitMQ or the agent service away: offset stays, the batch is fetched again
                failures += 1
                log.exception("telegram_poll_publish_failed", connector_id=connector.connector_id)
                await asyncio.sleep(_backoff(failures))

    async def _delete_webhook(self, connector: Connector) -> None:
        try:
            await self._client.call(connector, "deleteWebhook", {"drop_pending_updates": False})
        except DeliveryError as exc:
            log.warning(
                "telegram_delete_webhook_failed",
                connector_id=connector.connector_id,
                reason=exc.reason,
            )


def _backoff(failures: int) -> float:
    return min(MAX_BACKOFF_S, 0.2 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)
