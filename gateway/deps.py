"""Everything the gateway's routes need, built once in the app's lifespan."""

import asyncio
from dataclasses import dataclass

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope
from contracts.events.admin import TenantCreated, TenantSettingsChanged
from contracts.events.system import SYSTEM_TENANT
from contracts.queries.agent import QueueQuery
from gateway.auth.group_permissions import GroupPermissions
from gateway.auth.refresh_families import (
    MemoryRefreshFamilies,
    MongoRefreshFamilies,
    RefreshFamilies,
)
from gateway.auth.revocation import RevocationList
from gateway.auth.tokens import AgentPrincipal, TokenService
from gateway.background import in_background
from gateway.directory import ConversationDirectory
from gateway.message_index import MessageIndex
from gateway.ops import Operations
from gateway.origins import OriginPolicy
from gateway.presence import AgentPresence
from gateway.ratelimit import AddressThrottle
from gateway.sessions import CLOSE_TOKEN_EXPIRED, SessionRegistry
from gateway.tailer import Tailer
from gateway.tenant_settings import TenantSettingsCache
from gateway.tenants import TenantDirectory
from gateway.ws_limits import WebsocketLimits
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RemoteError, RpcClient
from relaydesk.health import CHECK_TIMEOUT_S, Readiness
from relaydesk.settings import Settings
from relaydesk.store import database, make_client


@dataclass
class GatewayDeps:
    settings: Settings
    bus: Bus
    rpc: RpcClient
    tokens: TokenService
    tailer: Tailer
    sessions: SessionRegistry
    operations: Operations
    origins: OriginPolicy
    tenant_settings: TenantSettingsCache
    revocations: RevocationList
    # One per gateway, shared by the auth and sign-up routers (gateway/auth/throttle.py).
    credential_throttle: AddressThrottle
    ws_limits: WebsocketLimits
    tenants: TenantDirectory
    group_permissions: GroupPermissions
    refresh_families: RefreshFamilies
    messages: MessageIndex
    # What "ready" means for this gateway (watch()): its health port's /readyz and the
    # public /readyz both answer from it.
    readiness: Readiness
    presence: AgentPresence  # when an agent whose sockets all closed counts as gone
    mongo: AsyncMongoClient | None = None
    # One database object for the gateway's life: its beanie documents are bound to it
    # (on first use, so the gateway starts while MongoDB is away; see relaydesk/store.py).
    db: AsyncDatabase | None = None

    @classmethod
    async def start(cls, settings: Settings) -> "GatewayDeps":
        bus = await Bus.from_settings(settings, service="gateway").connect()
        rpc = RpcClient(bus)
        directory, sessions = ConversationDirectory(), SessionRegistry()
        tailer = Tailer(bus, directory, sessions, buffer_size=settings.resume_buffer_events)
        tenant_settings = TenantSettingsCache(rpc)
        messages = MessageIndex(rpc, timeout_s=settings.request_timeout_s)
        mongo = make_client(settings.mongo_url) if settings.mongo_url else None
        db = database(mongo, settings.mongo_db) if mongo is not None else None
        operations = Operations(
            bus, rpc, directory, request_timeout_s=settings.request_timeout_s, messages=messages
        )

        def has_sockets(agent: AgentPrincipal) -> bool:
            return bool(sessions.agent_sessions(agent.tenant, agent.agent_id))

        def report_lost(agent: AgentPrincipal) -> None:
            in_background(operations.connection_lost(agent, lambda: not has_sockets(agent)))

        deps = cls(
            settings=settings,
            bus=bus,
            rpc=rpc,
            tokens=TokenService(settings),
            tailer=tailer,
            sessions=sessions,
            operations=operations,
            origins=OriginPolicy(tenant_settings, settings.gateway_url()),
            tenant_settings=tenant_settings,
            revocations=RevocationList(),
            credential_throttle=AddressThrottle(
                settings.auth_rate_per_min / 60.0, settings.auth_rate_burst
            ),
            ws_limits=WebsocketLimits(settings),
            tenants=TenantDirectory(rpc),
            group_permissions=GroupPermissions(rpc),
            refresh_families=(
                MongoRefreshFamilies(db) if db is not None else MemoryRefreshFamilies()
            ),
            messages=messages,
            readiness=Readiness(settings.ready_max_lag_s),
            presence=AgentPresence(
                settings.agent_reconnect_window_s,
                asyncio.get_running_loop().call_later,
                has_sockets,
                report_lost,
            ),
            mongo=mongo,
            db=db,
        )
        tailer.listeners.append(deps._on_event)
        await tailer.start()
        deps.watch(deps.readiness)
        return deps

    def watch(self, readiness: Readiness) -> None:
        """The gateway is ready when it reaches the broker, the store and the log, and
        routing answers: without routing no chat can start and no agent can sign in."""
        readiness.broker("gateway", self.bus)
        if self.mongo is not None:
            readiness.store("gateway", self.mongo)
        readiness.reader("gateway", lambda: self.tailer.reader)
        readiness.add("routing", self._routing_answers)

    async def _routing_answers(self) -> str | None:
        try:
            await self.rpc.ask(QueueQuery(tenant=SYSTEM_TENANT), timeout=CHECK_TIMEOUT_S * 0.9)
        except RemoteError:
            return None  # an answer, even a refusal, is routing answering
        except TimeoutError:
            return "routing (agent service) does not answer queries"
        return None

    def _on_event(self, event: Envelope) -> None:
        if event.type == TenantSettingsChanged.TYPE:
            self.tenant_settings.forget(event.tenant)
        elif event.type == TenantCreated.TYPE:
            self.tenants.created(event.tenant)
        self.messages.apply(event)
        revoked = self.revocations.apply(event)
        if revoked is not None:
            for session in self.sessions.agent_sessions(*revoked):
                session.close(CLOSE_TOKEN_EXPIRED)
        regrouped = self.group_permissions.apply(event)
        if regrouped is not None:
            tenant, group_id = regrouped
            for session in self.sessions.group_sessions(tenant, group_id):
                session.close(CLOSE_TOKEN_EXPIRED)  # reconnects with a refreshed token

    async def stop(self) -> None:
        self.presence.stop()
        for session in self.sessions.all():
            session.close(1012)
        await asyncio.gather(
            self.tailer.stop(), self.bus.close()
        )  # separate connections: close them together
        if self.mongo is not None:
            await self.mongo.close()
