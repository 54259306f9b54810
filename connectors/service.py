"""ConnectorsService: webhook endpoint, log follower, outbound deliverer, commands, queries.

A snapshot of what the follower folds in memory is kept (``snapshot.py``) and a start folds
only the log after its position; without one (or with one it cannot use) the whole log.
"""

import asyncio
import contextlib
import itertools
from typing import Any

import httpx
import structlog
import uvicorn
from aio_pika.abc import AbstractChannel
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from connectors.config import SERVICE, ConnectorDirectory
from connectors.decider import ConnectorsDecider
from connectors.deliverer import Deliverer
from connectors.documents import CONNECTOR_DOCUMENTS
from connectors.follower import LogFollower
from connectors.inbound import InboundBridge
from connectors.messenger import MessengerClient
from connectors.outbound_items import OutboundSender, PlatformClient
from connectors.plans import TenantPlans
from connectors.poller import TelegramPoller
from connectors.queries import ConnectorQueries
from connectors.snapshot import ConnectorSnapshots, ConnectorSnapshotter
from connectors.store import ConnectorStore
from connectors.telegram import TelegramClient
from connectors.telegram_webhook import TelegramWebhookRegistrar
from connectors.webhooks import build_app
from connectors.wechat import WeChatClient
from contracts.envelope import LoggedEvent
from contracts.plans import PlanCatalogue
from relaydesk.archived import ArchivedLog
from relaydesk.attachments import AttachmentStore
from relaydesk.bus import Bus
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.log_reader import LogReader, Start
from relaydesk.bus.rpc import RpcClient, serve_commands, serve_queries
from relaydesk.decider import DeciderRuntime
from relaydesk.health import CannotListen, QuietServer, Readiness, serve_started
from relaydesk.net_guard import GuardedTransport, TargetPolicy
from relaydesk.queries import QueryAnswers
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from relaydesk.snapshots import SnapshotSchedule
from relaydesk.store import Checkpoint, Checkpoints, bind_documents, database, make_client

log = structlog.get_logger(__name__)

SNAPSHOT_EVERY = 1000  # events folded between snapshots (as routing's and billing's)
SNAPSHOT_MIN_INTERVAL_S = 10.0  # and no sooner than this after the last one


class ConnectorsService:
    """Start it with ``await start()``; ``port`` is the bound webhook port (useful with port 0).

    ``snapshot_every``, ``snapshot_min_interval_s``: when a snapshot of the fold is due
    (relaydesk/snapshots.py SnapshotSchedule).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_min_interval_s: float = SNAPSHOT_MIN_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self._schedule = SnapshotSchedule(snapshot_every, snapshot_min_interval_s)
        self.snapshotter: ConnectorSnapshotter | None = None
        self.follower: LogFollower | None = None
        self.restored_from: int | None = None  # the snapshot position of the last start
        self.folded_at_start = 0  # log entries the last start folded (after the snapshot)
        self._folded = 0
        self._mid_batch = False
        self.box = SecretBox.from_settings(settings)
        self.directory = ConnectorDirectory(self.box)
        self.plans = TenantPlans()  # for the plan's connectors limit
        self.port: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._channels: list[AbstractChannel] = []
        self._bus: Bus | None = None
        self._mongo: AsyncMongoClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._fetch: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._app: FastAPI | None = None
        self._reader: LogReader | None = None
        self._deliverer: Deliverer | None = None
        self._poller: TelegramPoller | None = None
        self._registrar: TelegramWebhookRegistrar | None = None

    async def start(self) -> None:
        assert self.settings.mongo_url, "connectors need MongoDB"
        self._bus = bus = await Bus.from_settings(self.settings, service=SERVICE).connect()
        self._mongo = make_client(self.settings.mongo_url)
        db = database(self._mongo, self.settings.mongo_db)
        await bind_documents(db, (*CONNECTOR_DOCUMENTS, Checkpoint))  # creates their indexes
        store = ConnectorStore(db)
        snapshots = ConnectorSnapshots(db, self.box)
        await snapshots.bind()
        self.snapshotter = ConnectorSnapshotter(snapshots, self._schedule)
        restored = await snapshots.load()
        if restored is not None:  # before anything holds the directory or the plans
            self.directory, self.plans = restored[0].directory, restored[0].plans
        self._http = httpx.AsyncClient()
        # URLs a platform's payload names (attachments, profile pictures) are a webhook
        # body's choice: fetched only through the SSRF guard (docs/security.md).
        self._fetch = httpx.AsyncClient(
            transport=GuardedTransport(TargetPolicy.from_settings(self.settings))
        )
        files = AttachmentStore(db)
        telegram = TelegramClient(self._http, self.settings.telegram_api_base)
        messenger = MessengerClient(self._http, self.settings.messenger_api_base, self._fetch)
        wechat = WeChatClient(self._http, self.settings.wechat_api_base, self._fetch)
        clients: dict[str, PlatformClient] = {
            "telegram": telegram,
            "messenger": messenger,
            "wechat": wechat,
        }
        self._deliverer = Deliverer(
            bus,
            store,
            OutboundSender(clients, files),
            self.directory.usable,
            breaker_failures=self.settings.connector_breaker_failures,
            breaker_open_s=self.settings.connector_breaker_open_s,
        )
        self.follower = follower = LogFollower(
            self.directory, store, Checkpoints(db), self._deliverer, clients, self.plans
        )
        await follower.load()
        start: Start = "first"
        self.restored_from, self._folded = None, 0
        if restored is not None:
            follower.restore(restored[0].follower, restored[0].position)
            self.restored_from = restored[0].position
            start = restored[0].position + 1
        self._reader = await LogReader(
            bus, start=start, name=SERVICE, gulp_s=self.settings.reader_gulp_s
        ).open()
        # connectors configured longer ago than the stream's retention: from the archive
        await catch_up(bus, self._reader, self._apply, service=SERVICE, archive=ArchivedLog(db))
        self.folded_at_start = self._folded
        log.info(
            "connectors_state_restored",
            snapshot_position=self.restored_from,
            folded=self.folded_at_start,
        )
        self._maybe_snapshot()
        self._tasks.append(asyncio.create_task(self._follow(follower)))
        self._tasks.append(asyncio.create_task(self._deliverer.run()))
        bridge = InboundBridge(
            bus,
            RpcClient(bus),
            store,
            request_timeout_s=self.settings.request_timeout_s,
            sources={"telegram": telegram, "messenger": messenger, "wechat": wechat},
            files=files,
        )
        self._poller = TelegramPoller(telegram, bridge, self.directory)
        self._tasks.append(asyncio.create_task(self._poller.run()))
        self._registrar = TelegramWebhookRegistrar(
            telegram,
            self.directory,
            # the bundled nginx routes /webhooks/ from the public address to this service
            self.settings.connectors_public_url or self.settings.public_url,
        )
        self._tasks.append(asyncio.create_task(self._registrar.run()))
        decider = ConnectorsDecider(
            self.directory, self.box, self.plans, PlanCatalogue.load(self.settings.plans_file)
        )
        runtime = DeciderRuntime(decider, bus.publish_many)
        self._channels.append(await serve_commands(bus, SERVICE, runtime.handle))
        self._channels.append(
            await serve_queries(
                bus, SERVICE, QueryAnswers(SERVICE, ConnectorQueries(self.directory)).handle
            )
        )
        self._app = build_app(
            self.directory, bridge, wechat_window_s=self.settings.wechat_timestamp_window_s
        )
        await self._serve_http(self._app)
        log.info("connectors_started", port=self.port, connectors=len(self.directory.all()))

    def watch(self, readiness: Readiness) -> None:
        assert self._bus is not None and self._mongo is not None, "start() first"
        readiness.broker(SERVICE, self._bus)
        readiness.store(SERVICE, self._mongo)
        readiness.reader(SERVICE, lambda: self._reader)
        readiness.command_queue(SERVICE, self._bus, SERVICE)

    def breaker_state(self, connector_id: str) -> str:
        """The connector's circuit breaker: ``closed``, ``open`` or ``half_open``."""
        assert self._deliverer is not None, "not started"
        return self._deliverer.breaker_state(connector_id)

    def deferred_s(self, connector_id: str) -> float:
        """Seconds the connector still waits for a platform quota to reset (0: none)."""
        assert self._deliverer is not None, "not started"
        return self._deliverer.deferred_s(connector_id)

    async def _apply(self, batch: list[LoggedEvent]) -> None:
        assert self.follower is not None
        # Set until a batch is applied whole: one cut short (a failure, a stop) has folded
        # part of it, and a snapshot then would not be the log up to its position.
        self._mid_batch = True
        await self.follower.apply(batch)
        self._mid_batch = False
        self._folded += len(batch)
        if self.snapshotter is not None:
            self.snapshotter.folded(len(batch))

    def _maybe_snapshot(self, *, force: bool = False) -> None:
        """Between two batches, each one's effects done (its replies are in the outbox)."""
        if self.snapshotter is not None and self.follower is not None and not self._mid_batch:
            self.snapshotter.maybe_save(self.directory, self.plans, self.follower, force=force)

    async def _follow(self, follower: LogFollower) -> None:
        assert self._reader is not None
        async for batch in self._reader.batches():
            # A batch is applied before the next is read: skipping one would lose its replies.
            for attempt in itertools.count(1):
                try:
                    await self._apply(batch)
                    self._maybe_snapshot()
                    break
                except Exception:
                    log.exception(
                        "connectors_follow_failed", attempt=attempt, position=batch[-1].position
                    )
                    await asyncio.sleep(min(10.0, 0.2 * 2 ** min(attempt, 6)))

    async def _serve_http(self, app: Any) -> None:
        config = uvicorn.Config(
            app,
            host=self.settings.connectors_host,
            port=self.settings.connectors_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = QuietServer(config)
        try:
            self._server_task = await serve_started(self._server)
        except CannotListen as exc:  # one line and exit 2, not uvicorn's traceback and exit 3
            raise exc.as_configuration("RELAYDESK_CONNECTORS") from None
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._server_task
            self._tasks.extend(self._app.state.background if self._app is not None else ())
        if self._poller is not None:
            await self._poller.stop()
        if self._registrar is not None:
            self._registrar.stop()
        if self._deliverer is not None:
            await self._deliverer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        following = bool(self._tasks)
        self._tasks.clear()
        if self.snapshotter is not None:
            if following:
                self._maybe_snapshot(force=True)
            await self.snapshotter.wait()
        for channel in self._channels:
            if not channel.is_closed:
                await channel.close()
        if self._reader is not None:
            await self._reader.close()
        if self._http is not None:
            await self._http.aclose()
        if self._fetch is not None:
            await self._fetch.aclose()
        if self._bus is not None:
            await self._bus.close()
        if self._mongo is not None:
            await self._mongo.close()
