"""One running connectors system shared by a module's tests (each test in a tenant of its own,
with bots of its own): the fake platforms, the agent service, the connectors service, a bus
and a log watch. Messenger and WeChat serve one page / account each, and one page or account
is one connector only (duplicates are refused), so those two are configured once here, in
``SHARED_TENANT``; tests tell their chats apart by user."""

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

from agent_service.service import AgentService
from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.conftest import (
    AES_KEY,
    PUBLIC_URL,
    TELEGRAM_TOKEN,
    FakePlatforms,
    quiet_tenant,
)
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat
from tests.connectors.harness import MessengerDriver, WeChatDriver, configure
from tests.connectors.helpers import LogWatch
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import throwaway_settings

SHARED_TENANT = "shared"
_bots = itertools.count(900001)


@dataclass
class World:
    fakes: FakePlatforms
    settings: Settings
    service: ConnectorsService
    bus: Bus
    watch: LogWatch
    messenger: MessengerDriver
    wechat: WeChatDriver

    def new_bot(self) -> str:
        """A bot token of its own (bot ids are unique: one bot is one connector)."""
        token = f"{next(_bots)}:AAH-test-token_{len(self.fakes.telegram.tokens)}"
        self.fakes.telegram.add_bot(token)
        return token

    async def telegram(self, tenant: str, connector_id: str, **public: str) -> str:
        token = self.new_bot()
        reply = await configure(
            self.bus,
            self.service.box,
            tenant,
            connector_id,
            "telegram",
            {"mode": "webhook", **public},
            {"bot_token": token, "webhook_secret": "s3cret_" + connector_id},
        )
        assert reply.ok, reply
        return token


@contextlib.asynccontextmanager
async def shared_world(
    vhosts: RabbitVhosts,
    mongo_server: MongoServer,
    quiet: tuple[str, ...] = (),
    **overrides: object,
) -> AsyncIterator[World]:
    """``quiet``: tenants (besides the shared one) whose platform users get the agents' replies
    only, no greeting or offline line (set before the agent service starts: no race)."""
    fakes = FakePlatforms(
        FakeTelegram(TELEGRAM_TOKEN),
        FakeMessenger("1122334455", "page-token-secret", "app-secret-äbc"),
        FakeWeChat("wx1234567890", "wechat-app-secret", "AAAAA", AES_KEY),
    )
    servers = (fakes.telegram, fakes.messenger, fakes.wechat)
    for fake in servers:
        await fake.start()
    try:
        async with throwaway_settings(
            vhosts,
            mongo_server,
            connectors_port=0,
            connectors_public_url=PUBLIC_URL,
            telegram_api_base=fakes.telegram.base_url,
            messenger_api_base=fakes.messenger.base_url,
            wechat_api_base=fakes.wechat.base_url,
            **overrides,
        ) as settings:
            bus = await Bus(
                settings.amqp_url, service="test", stream_url=settings.stream_url
            ).connect()
            for tenant in (SHARED_TENANT, *quiet):
                await quiet_tenant(bus, tenant)
            agent = AgentService(settings)
            await agent.start()
            service = ConnectorsService(settings)
            await service.start()
            watch = await LogWatch(bus).start()
            try:
                messenger = MessengerDriver(fakes.messenger, service)
                wechat = WeChatDriver(fakes.wechat, service)
                assert (await messenger.setup(bus, SHARED_TENANT)).ok
                assert (await wechat.setup(bus, SHARED_TENANT)).ok
                yield World(fakes, settings, service, bus, watch, messenger, wechat)
            finally:
                await watch.stop()
                await bus.close()
                await service.stop()
                await agent.stop()
    finally:
        for fake in servers:
            await fake.stop()
