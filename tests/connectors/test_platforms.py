"""The connector contract for Telegram (webhook mode), Messenger and WeChat (safe mode)."""

import pytest

from connectors.service import ConnectorsService
from tests.connectors.contract import ConnectorContract
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat
from tests.connectors.harness import MessengerDriver, TelegramDriver, WeChatDriver


class TestTelegram(ConnectorContract):
    @pytest.fixture
    def driver(self, fake_telegram: FakeTelegram, connectors: ConnectorsService) -> TelegramDriver:
        return TelegramDriver(fake_telegram, connectors)


class TestMessenger(ConnectorContract):
    @pytest.fixture
    def driver(
        self, fake_messenger: FakeMessenger, connectors: ConnectorsService
    ) -> MessengerDriver:
        return MessengerDriver(fake_messenger, connectors)


class TestWeChat(ConnectorContract):
    @pytest.fixture
    def driver(self, fake_wechat: FakeWeChat, connectors: ConnectorsService) -> WeChatDriver:
        return WeChatDriver(fake_wechat, connectors)
