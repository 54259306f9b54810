"""AdminService: folds the log, decides admin commands (queue ``admin``), answers queries."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from agent_service.admin import accounts, decisions
from agent_service.admin.decisions import Emitted, Rejected
from agent_service.admin.lockout import Lockout
from agent_service.admin.queries import AdminQueries
from agent_service.admin.seats import check_seats
from agent_service.admin.state import AdminState
from contracts import Envelope, derive_event_id
from contracts.commands.admin import SubscribeWebhook
from contracts.envelope import LoggedEvent
from contracts.plans import PlanCatalogue
from contracts.registry import EVENTS, parse_command_data
from contracts.replies import CommandReply
from outbound_webhooks.dispatcher import WebhookDispatcher
from outbound_webhooks.worker import RetryPolicy
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.rpc import serve_commands, serve_queries
from relaydesk.net_guard import RefusedTarget, TargetPolicy
from relaydesk.settings import Settings
from relaydesk.store import database, make_client

log = structlog.get_logger(__name__)

SERVICE = "admin"
STREAM_KEYS = ("agent_id", "group_id", "canned_id", "subscription_id")
HANDLERS = {**decisions.HANDLERS, **accounts.HANDLERS}


def stream_for(data: dict) -> str:
    for key in STREAM_KEYS:
        if isinstance(data.get(key), str):
            return f"{key.removesuffix('_id')}:{data[key]}"
    return "tenant"


class AdminService:
    """Args:
    webhook_policy: delivery timeout and retry backoff (default: ``RetryPolicy()``, 0.25 s
        doubling to 60 s).
    catalogue: the plans whose ``agent_seats`` limit is enforced (default: ``settings.plans_file``).
    clock: today's date for plan changes with an effective date (default: now, UTC).
    targets: where webhooks may go (default: from the settings: public addresses, and the
        operator's ``webhook_allowed_networks``).
    """

    def __init__(
        self,
        settings: Settings,
        webhook_policy: RetryPolicy | None = None,
        *,
        catalogue: PlanCatalogue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        targets: TargetPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._targets = targets or TargetPolicy.from_settings(settings)
        self.catalogue = catalogue or PlanCatalogue.load(settings.plans_file)
        self._clock = clock
        self._webhook_policy = webhook_policy
        self.webhooks: WebhookDispatcher | None = None
        self._mongo: AsyncMongoClient | None = None
        self.state = AdminState()
        self.bus: Bus | None = None
        self._reader: LogReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._channels: list[AbstractChannel] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.bus = await Bus(
            self.settings.amqp_url,
            service=SERVICE,
            publish_timeout_s=self.settings.publish_timeout_s,
            stream_url=self.settings.stream_url,
        ).connect()
        self._start_webhooks()
        self._reader = await LogReader(self.bus, start="first", name="admin").open()
        await catch_up(self.bus, self._reader, self._fold, service=SERVICE)
        self._task = asyncio.create_task(self._follow())
        self._channels.append(await serve_commands(self.bus, SERVICE, self.handle_command))
        self._channels.append(
            await serve_queries(
                self.bus, SERVICE, AdminQueries(self.state, Lockout(), self.webhooks).handle
            )
        )
        log.info("admin_service_started", tenants=len(self.state.tenants))

    def _start_webhooks(self) -> None:
        assert self.bus is not None
        if not self.settings.mongo_url:
            log.warning(
                "webhooks_disabled",
                reason="no MongoDB configured for the delivery log and positions",
            )
            return
        self._mongo = make_client(self.settings.mongo_url)
        db = database(self._mongo, self.settings.mongo_db)
        self.webhooks = WebhookDispatcher(
            self.bus,
            db,
            self.settings.secrets_key.get_secret_value(),
            self._webhook_policy,
            self._targets,
        )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.webhooks:
            await self.webhooks.stop()
        if self._mongo is not None:
            await self._mongo.close()
        if self.bus:
            await self.bus.close()

    async def _fold(self, batch: list[LoggedEvent]) -> None:
        before = self.state.position
        for logged in batch:
            self.state.apply(logged.envelope, logged.position)
        self._sync_webhooks(before)

    def _sync_webhooks(self, start_hint: int) -> None:
        if self.webhooks is not None:
            self.webhooks.sync(self.state.webhook_subscriptions(), start_hint)

    async def _prepare(self, command: Envelope) -> None:
        """The checks that need I/O, before the pure decision: a webhook URL's addresses."""
        if command.type == SubscribeWebhook.TYPE:
            try:
                await self._targets.check(str(command.data.get("url")), unresolvable_ok=True)
            except RefusedTarget as exc:
                raise Rejected("invalid_payload", f"webhook URL refused: {exc}") from None

    def _decide(self, command: Envelope) -> Emitted:
        payload = parse_command_data(command)
        if command.type in accounts.SAAS_ONLY and self.settings.mode != "saas":
            raise Rejected("forbidden", "sign-up is only open in SaaS mode")
        emitted = HANDLERS[payload.TYPE](self.state, command.tenant, payload)
        check_seats(self.state, command.tenant, emitted, self.catalogue, self._clock().date())
        return emitted

    async def _follow(self) -> None:
        assert self._reader is not None
        async for batch in self._reader.batches():
            async with self._lock:
                await self._fold(batch)

    async def handle_command(self, command: Envelope) -> CommandReply:
        async with self._lock:
            if command.id in self.state.decided:  # a redelivery: same answer, nothing new
                return CommandReply(ok=True, event_ids=tuple(self.state.decided[command.id]))
            try:
                await self._prepare(command)
                emitted = self._decide(command)
            except Rejected as exc:
                return CommandReply(ok=False, code=exc.code, message=exc.message)
            events = [
                Envelope(
                    id=derive_event_id(command.tenant, command.id, str(i)),
                    type=type_name,
                    tenant=command.tenant,
                    stream=stream_for(data),
                    actor=command.actor,
                    correlation_id=command.correlation_id or command.id,
                    causation_id=command.id,
                    data=data,
                )
                for i, (type_name, data) in enumerate(emitted)
            ]
            for event in events:
                EVENTS.parse_envelope(event)
            assert self.bus is not None
            await self.bus.publish_many(events)
            before = self.state.position
            for event in events:
                self.state.apply(event)  # decide the next command on the new state at once
            self._sync_webhooks(before)
        log.info("admin_command_decided", command_type=command.type, events=len(events))
        return CommandReply(
            ok=True,
            event_ids=tuple(e.id for e in events),
            data={"ids": [e.data.get(k) for e in events for k in STREAM_KEYS if k in e.data][:1]},
        )
