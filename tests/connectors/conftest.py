"""Connector tests: real RabbitMQ, real MongoDB protocol server, the real agent service, and
fake platforms that are real HTTP servers on loopback ports."""

from collections.abc import AsyncIterator

import pytest

from agent_service.service import AgentService
from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat
from tests.connectors.helpers import LogWatch

TENANT = "acme"
TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(TELEGRAM_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_messenger() -> AsyncIterator[FakeMessenger]:
    fake = FakeMessenger("1122334455", "page-token-secret", "app-secret-äbc")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_wechat() -> AsyncIterator[FakeWeChat]:
    fake = FakeWeChat("wx1234567890", "wechat-app-secret", "AAAAA", AES_KEY)
    await fake.start()
    yield fake
    await fake.stop()


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
            "telegram_api_base": fake_telegram.base_url,
            "messenger_api_base": fake_messenger.base_url,
            "wechat_api_base": fake_wechat.base_url,
        }
    )


@pytest.fixture
async def agent_service(connector_settings: Settings) -> AsyncIterator[AgentService]:
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
