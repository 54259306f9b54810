"""SaaS sign-up with e-mail confirmation; refused in tool mode."""

import re
from collections.abc import AsyncIterator
from email import message_from_string, policy
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from structlog.testing import capture_logs

from contracts import Actor, Envelope
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.helpers import login
from tests.system import RunningSystem, running_system
from tools.embedded import free_port

SIGNUP = {
    "tenant": "initech",
    "name": "Initech",
    "email": "Peter@Initech.test",
    "owner_name": "Peter",
    "password": "tps-reports-2",
}


@pytest.fixture
async def saas(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(
        settings.model_copy(update={"mode": "saas"}), with_history=False
    ) as running:
        yield running


async def sign_up(http: httpx.AsyncClient, **changes: str) -> tuple[httpx.Response, list[dict]]:
    with capture_logs() as logs:
        response = await http.post("/api/signup", json={**SIGNUP, **changes})
    return response, logs


def confirmation_path(logs: list[dict]) -> str:
    [entry] = [e for e in logs if e["event"] == "signup_confirmation_link"]
    link = urlsplit(entry["link"])
    return f"{link.path}?{link.query}"


async def test_sign_up_is_usable_only_after_the_email_link_is_followed(saas: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=saas.gateway.base_url) as http:
        response, logs = await sign_up(http)
        assert response.status_code == 202, response.text
        assert all(SIGNUP["password"] not in repr(entry) for entry in logs)
        assert (
            await login(http, "initech", "peter@initech.test", SIGNUP["password"])
        ).status_code == 401
        path = confirmation_path(logs)
        forged = await http.get(path[:-4] + "AAAA")
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_token"
        confirmed = await http.get(path)
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
        owner = await login(http, "initech", "peter@initech.test", SIGNUP["password"])
        assert owner.status_code == 200 and owner.json()["agent"]["role"] == "owner"
        headers = {"Authorization": f"Bearer {owner.json()['access_token']}"}
        assert (await http.get("/api/admin/settings", headers=headers)).status_code == 200
        again, _ = await sign_up(http)
        assert again.status_code == 409


async def test_a_pending_tenant_name_is_taken_and_invalid_input_is_refused(
    saas: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=saas.gateway.base_url) as http:
        assert (await sign_up(http))[0].status_code == 202
        assert (await sign_up(http, email="someone@else.test"))[0].status_code == 409
        bad = await http.post("/api/signup", json={**SIGNUP, "tenant": "x", "password": "short"})
        assert bad.status_code in (400, 422)


async def test_tool_mode_has_no_sign_up(system: RunningSystem, bus: Bus) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        response, logs = await sign_up(http)
        assert response.status_code == 404
        assert not [e for e in logs if e["event"] == "signup_confirmation_link"]
        assert (
            await http.get("/api/signup/confirm", params={"token": "initech.abcdefghijkl"})
        ).status_code == 404
    # Nor over the bus: the admin service itself refuses.
    data = {
        "tenant_id": "initech",
        "name": "Initech",
        "owner_email": "p@i.test",
        "owner_name": "P",
        "password_hash": "x",
        "token_hash": "abc",
    }
    command = Envelope(
        type="tenant.sign_up",
        tenant="initech",
        stream="tenant",
        actor=Actor(kind="system", id="test"),
        data=data,
    )
    reply = await RpcClient(bus).command("admin", command, timeout=10)
    assert not reply.ok and reply.code == "forbidden"


class Mailbox:
    """What a real SMTP server (aiosmtpd) received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


async def test_with_a_mail_server_the_link_is_mailed_and_not_logged(settings: Settings) -> None:
    mailbox, port = Mailbox(), free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        saas = settings.model_copy(update={"mode": "saas", "smtp_url": f"smtp://127.0.0.1:{port}"})
        async with (
            running_system(saas, with_history=False) as system,
            httpx.AsyncClient(base_url=system.gateway.base_url) as http,
        ):
            response, logs = await sign_up(http)
            assert response.status_code == 202, response.text
            assert not [e for e in logs if e["event"] == "signup_confirmation_link"]
            [(recipients, content)] = mailbox.messages
            assert recipients == ["Peter@Initech.test"]
            text = message_from_string(content, policy=policy.default).get_content()  # type: ignore[attr-defined]
            link = urlsplit(re.search(r"https?://\S+", text).group(0))  # type: ignore[union-attr]
            assert (await http.get(f"{link.path}?{link.query}")).status_code == 200
            assert (
                await login(http, "initech", "peter@initech.test", SIGNUP["password"])
            ).status_code == 200
    finally:
        smtp.stop()
