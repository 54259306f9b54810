"""Connector tests: real RabbitMQ, real MongoDB protocol server, the real agent service, and
fake platforms that are real HTTP servers on loopback ports."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from agent_service.service import AgentService
from connectors.service import ConnectorsService
from contracts.envelope import Actor, Envelope
from contracts.events.admin import TenantSettingsChanged
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat
from tests.connectors.helpers import LogWatch

TENANT = "acme"
TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PUBLIC_URL = "https://relaydesk.example/connectors"  # what Telegram is told to call (setWebhook)


@dataclass
class FakePlatforms:
    telegram: FakeTelegram
    messenger: FakeMessenger
    wechat: FakeWeChat


@pytest.fixture
async def fake_platforms() -> AsyncIterator[FakePlatforms]:
    """The three fake platforms, started and stopped together (each stop waits a server tick)."""
    fakes = FakePlatforms(
        FakeTelegram(TELEGRAM_TOKEN),
        FakeMessenger("1122334455", "page-token-secret", "app-secret-äbc"),
        FakeWeChat("wx1234567890", "wechat-app-secret", "AAAAA", AES_KEY),
    )
    servers = (fakes.telegram, fakes.messenger, fakes.wechat)
    await asyncio.gather(*(fake.start() for fake in servers))
    yield fakes
    await asyncio.gather(*(fake.stop() for fake in servers))


@pytest.fixture
def fake_telegram(fake_platforms: FakePlatforms) -> FakeTelegram:
    return fake_platforms.telegram


@pytest.fixture
def fake_messenger(fake_platforms: FakePlatforms) -> FakeMessenger:
    return fake_platforms.messenger


@pytest.fixture
def fake_wechat(fake_platforms: FakePlatforms) -> FakeWeChat:
    return fake_platforms.wechat


@pytest.fixture
def connector_settings(
    settings: Settings,
    fake_telegram: FakeTelegram,
    fake_messenger: FakeMessenger,
    fake_wechat: FakeWeChat,
) -> Settings:
    return settings.model_copy(
        update={
            "connectors_port": 0,
            "connectors_public_url": PUBLIC_URL,
            "telegram_api_base": fake_telegram.base_url,
            "messenger_api_base": fake_messenger.base_url,
            "wechat_api_base": fake_wechat.base_url,
            # the fakes serve "CDN" files and profile pictures on loopback, which the SSRF
            # guard refuses unless the operator allows it
            "webhook_allowed_networks": "127.0.0.1/32",
        }
    )


async def quiet_tenant(bus: Bus, tenant: str) -> None:
    """No greeting and no offline line for ``tenant``: what its platform users receive is the
    agents' replies only (tests of the system lines use a tenant of their own)."""
    await bus.publish(
        Envelope(
            type=TenantSettingsChanged.TYPE,
            tenant=tenant,
            stream=f"tenant:{tenant}",
            actor=Actor(kind="admin", id="owner-1"),
            data={"before": {}, "after": {"greeting": "", "offline_text": ""}},
        )
    )


@pytest.fixture
async def agent_service(connector_settings: Settings, bus: Bus) -> AsyncIterator[AgentService]:
    await quiet_tenant(bus, TENANT)
    service = AgentService(connector_settings)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def connectors(
    connector_settings: Settings, agent_service: AgentService
) -> AsyncIterator[ConnectorsService]:
    service = ConnectorsService(connector_settings)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def watch(bus: Bus) -> AsyncIterator[LogWatch]:
    started = await LogWatch(bus).start()
    yield started
    await started.stop()
