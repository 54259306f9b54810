"""Secrets and message bodies never reach the logs, whatever the services do with them."""

import httpx
import pytest

from relaydesk.settings import Settings
from tests.admin.helpers import bearer, cli, new_agent
from tests.gateway.wsclient import Client
from tests.system import running_system

BODY = "my card number is 4111-1111-1111-1111"


async def test_passwords_tokens_secrets_and_bodies_stay_out_of_the_logs(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        assert (
            await cli(system.settings, "create-tenant", "--tenant", "logs", "--name", "Logs")
        ).returncode == 0
        assert (
            await cli(
                system.settings,
                "create-agent",
                "--tenant",
                "logs",
                "--email",
                "boss@logs.test",
                "--name",
                "Boss",
                "--role",
                "owner",
                "--password",
                "owner-pass-Zq9",
            )
        ).returncode == 0
        owner = await bearer(http, "logs", "boss@logs.test", "owner-pass-Zq9")
        assert (
            await http.post(
                "/api/auth/login",
                json={"tenant": "logs", "email": "boss@logs.test", "password": "wrong-pass-Xy7"},
            )
        ).status_code == 401
        _, agent_auth = await new_agent(http, owner, "logs", "alice")
        login = (
            await http.post(
                "/api/auth/login",
                json={"tenant": "logs", "email": "alice@logs.test", "password": "alice-password"},
            )
        ).json()
        refreshed = (
            await http.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
        ).json()
        webhook = await http.post(
            "/api/admin/webhooks",
            headers=owner,
            json={"url": "https://hooks.example/relaydesk", "events": ["message.sent"]},
        )
        agent = await Client.connect(
            system.gateway.ws_url,
            agent_auth["Authorization"].split()[1],
            origin=system.gateway.base_url,
        )
        await agent.op("status", status="online")
        visitor_token = system.visitor_token("logs", "visitor-9")
        customer = await Client.connect(
            system.gateway.ws_url, visitor_token, origin="https://shop.example"
        )
        conversation_id = (
            await customer.op("start", visitor={"name": "Pat", "email": "pat@private.example"})
        )["conversation_id"]
        await agent.wait_event("conversation.offered", conversation_id=conversation_id)
        await agent.op("accept", conversation_id=conversation_id)
        assert (await customer.op("send", conversation_id=conversation_id, body=BODY))["t"] == "ack"
        await agent.wait_event("message.sent", conversation_id=conversation_id)
        await agent.close()
        await customer.close()
    logged = "".join(capfd.readouterr())
    assert (
        "login_failed" in logged or "ws_opened" in logged
    )  # the services did log while we watched
    secrets = {
        "owner password": "owner-pass-Zq9",
        "wrong password": "wrong-pass-Xy7",
        "agent password": "alice-password",
        "access token": login["access_token"],
        "refresh token": login["refresh_token"],
        "refreshed token": refreshed["access_token"],
        "visitor token": visitor_token,
        "jwt secret": settings.jwt_secret.get_secret_value(),
        "message body": BODY,
        "card number": "4111-1111",
    }
    if webhook.status_code == 201 and "secret" in webhook.json():
        secrets["webhook secret"] = webhook.json()["secret"]
    leaked = [name for name, value in secrets.items() if value and value in logged]
    assert leaked == [], f"found in the logs: {leaked}"
