"""Per-platform drivers for the shared connector contract suite."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from connectors.service import ConnectorsService
from contracts.envelope import Actor, Envelope
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.fakes.wechat import FakeWeChat, text_xml
from tests.system import RunningSystem, running_system


async def configure(
    bus: Bus,
    box: SecretBox,
    tenant: str,
    connector_id: str,
    platform: str,
    public: dict[str, str],
    secrets: dict[str, str],
    *,
    timeout: float = 5.0,
) -> CommandReply:
    """What the admin API does: seal the secrets with the connectors' key (``box``: an
    in-process service's ``service.box``, or ``SecretBox.from_settings`` for a child
    process), send ``connector.configure`` to its owner and wait for the decision."""
    command = Envelope(
        type="connector.configure",
        tenant=tenant,
        stream=f"connector:{connector_id}",
        actor=Actor(kind="admin", id="owner-1"),
        data={
            "connector_id": connector_id,
            "platform": platform,
            "public_config": public,
            "sealed_secrets": box.seal(secrets),
        },
    )
    return await RpcClient(bus).command("connectors", command, timeout=timeout)


async def remove(bus: Bus, tenant: str, connector_id: str) -> CommandReply:
    """What the admin API's DELETE does: ``connector.remove`` to its owner, and its decision."""
    command = Envelope(
        type="connector.remove",
        tenant=tenant,
        stream=f"connector:{connector_id}",
        actor=Actor(kind="admin", id="owner-1"),
        data={"connector_id": connector_id},
    )
    return await RpcClient(bus).command("connectors", command)


@contextlib.asynccontextmanager
async def system_with_connectors(
    settings: Settings,
) -> AsyncIterator[tuple[RunningSystem, ConnectorsService]]:
    """The whole system (gateway included) plus the connectors service, on ``settings``."""
    async with running_system(settings) as system:
        service = ConnectorsService(settings)
        await service.start()
        try:
            yield system, service
        finally:
            await service.stop()


class TelegramDriver:
    platform = "telegram"
    secret = "tg-webhook-secret_1"

    def __init__(self, fake: FakeTelegram, service: ConnectorsService) -> None:
        self.fake, self.service = fake, service
        self.url = f"http://127.0.0.1:{service.port}/webhooks/telegram/tg1"
        self._last: dict[str, Any] | None = None

    async def setup(self, bus: Bus, tenant: str) -> CommandReply:
        return await configure(
            bus,
            self.service.box,
            tenant,
            "tg1",
            "telegram",
            {"mode": "webhook"},
            {"bot_token": self.fake.token, "webhook_secret": self.secret},
        )

    async def send(self, user: str, text: str) -> httpx.Response:
        self._last = self.fake.update(int(user), text)
        return await self.fake.post_webhook(self.url, self._last, self.secret)

    async def resend_last(self) -> httpx.Response:
        assert self._last is not None
        return await self.fake.post_webhook(self.url, self._last, self.secret)

    async def forge(self, user: str, text: str) -> httpx.Response:
        return await self.fake.post_webhook(
            self.url, self.fake.update(int(user), text), "wrong-secret"
        )

    def delivered(self) -> list[str]:
        return [m["text"] for m in self.fake.sent if m["method"] == "sendMessage"]

    async def set_down(self, down: bool) -> None:
        self.fake.down = down


class MessengerDriver:
    platform = "messenger"

    def __init__(self, fake: FakeMessenger, service: ConnectorsService) -> None:
        self.fake, self.service = fake, service
        self.url = f"http://127.0.0.1:{service.port}/webhooks/messenger/fb1"
        self._last: dict[str, Any] | None = None

    async def setup(self, bus: Bus, tenant: str) -> CommandReply:
        secrets = {
            "app_secret": self.fake.app_secret,
            "page_token": self.fake.page_token,
            "verify_token": "verify-me",
        }
        return await configure(
            bus,
            self.service.box,
            tenant,
            "fb1",
            "messenger",
            {"page_id": self.fake.page_id},
            secrets,
        )

    async def send(self, user: str, text: str) -> httpx.Response:
        self._last = self.fake.notification(user, text)
        return await self.fake.post_webhook(self.url, self._last)

    async def resend_last(self) -> httpx.Response:
        assert self._last is not None
        return await self.fake.post_webhook(self.url, self._last)

    async def forge(self, user: str, text: str) -> httpx.Response:
        return await self.fake.post_webhook(
            self.url, self.fake.notification(user, text), secret="not-the-app-secret"
        )

    def delivered(self) -> list[str]:
        return [m["message"]["text"] for m in self.fake.sent if "text" in m.get("message", {})]

    async def set_down(self, down: bool) -> None:
        self.fake.down = down


class WeChatDriver:
    platform = "wechat"

    def __init__(self, fake: FakeWeChat, service: ConnectorsService) -> None:
        self.fake, self.service = fake, service
        self.url = f"http://127.0.0.1:{service.port}/webhooks/wechat/wx1"
        self._last: str | None = None
        self._msg_id = 6349323426230210995

    async def setup(self, bus: Bus, tenant: str) -> CommandReply:
        secrets = {
            "app_secret": self.fake.app_secret,
            "token": self.fake.token,
            "encoding_aes_key": self.fake.aes_key,
        }
        return await configure(
            bus, self.service.box, tenant, "wx1", "wechat", {"app_id": self.fake.app_id}, secrets
        )

    async def send(self, user: str, text: str) -> httpx.Response:
        self._msg_id += 1
        self._last = text_xml("gh_fake", f"openid_{user}", text, self._msg_id)
        return await self.fake.push(self.url, self._last)

    async def resend_last(self) -> httpx.Response:
        assert self._last is not None
        return await self.fake.push(self.url, self._last)

    async def forge(self, user: str, text: str) -> httpx.Response:
        return await self.fake.push(
            self.url, text_xml("gh_fake", f"openid_{user}", text, 1), token="guessed-token"
        )

    def delivered(self) -> list[str]:
        return [m["text"]["content"] for m in self.fake.sent if m["msgtype"] == "text"]

    async def set_down(self, down: bool) -> None:
        # WeChat "down": the API host stops listening (connections refused)
        await (self.fake.cut() if down else self.fake.restore())
