"""Connector configuration through the admin API: secrets sealed on the log, never shown back."""

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.helpers import LogWatch, eventually
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(connector_settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(connector_settings, with_history=False) as running:
        yield running


@pytest.fixture
async def connectors_only(
    connector_settings: Settings, system: RunningSystem
) -> AsyncIterator[ConnectorsService]:
    service = ConnectorsService(connector_settings)
    await service.start()
    yield service
    await service.stop()


async def test_configure_list_remove_without_leaking_secrets(
    system: RunningSystem, connectors_only: ConnectorsService, watch: LogWatch
) -> None:
    admin = {"Authorization": f"Bearer {system.agent_token('acme', 'boss', role='admin')}"}
    agent = {"Authorization": f"Bearer {system.agent_token('acme', 'joe', role='agent')}"}
    other = {"Authorization": f"Bearer {system.agent_token('globex', 'eve', role='admin')}"}
    config = {
        "platform": "messenger",
        "public_config": {"page_id": "42"},
        "secrets": {"app_secret": "s3cr3t-app", "page_token": "tok-XYZ", "verify_token": "vt"},
    }
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        assert (
            await http.put("/api/admin/connectors/fb9", headers=agent, json=config)
        ).status_code == 403
        missing = await http.put(
            "/api/admin/connectors/fb9",
            headers=admin,
            json={**config, "secrets": {"app_secret": "x"}},
        )
        assert missing.status_code == 400 and "page_token" in missing.json()["error"]["message"]
        assert (
            await http.put("/api/admin/connectors/fb9", headers=admin, json=config)
        ).status_code == 200
        assert (
            await http.put("/api/admin/connectors/fb9", headers=other, json=config)
        ).status_code == 409  # id taken by acme

        listed = (await http.get("/api/admin/connectors", headers=admin)).json()
        assert listed == [
            {
                "connector_id": "fb9",
                "platform": "messenger",
                "public_config": {"page_id": "42"},
                "secrets_set": ["app_secret", "page_token", "verify_token"],
                "paused": False,
            }
        ]
        assert (await http.get("/api/admin/connectors", headers=other)).json() == []
        configured = await watch.wait_for("connector.configured", connector_id="fb9")
        assert (
            "s3cr3t-app" not in configured[0].model_dump_json()
            and "tok-XYZ" not in configured[0].model_dump_json()
        )

        # public fields change, secrets kept
        changed = await http.put(
            "/api/admin/connectors/fb9",
            headers=admin,
            json={"platform": "messenger", "public_config": {"page_id": "43"}},
        )
        assert changed.status_code == 200
        assert connectors_only.directory.find("fb9").secrets["page_token"] == "tok-XYZ"  # type: ignore[union-attr]

        assert (await http.delete("/api/admin/connectors/fb9", headers=other)).status_code == 404
        assert (await http.delete("/api/admin/connectors/fb9", headers=admin)).status_code == 200
        assert (await http.get("/api/admin/connectors", headers=admin)).json() == []


async def test_configuration_survives_restart(
    connector_settings: Settings, system: RunningSystem, bus: Bus
) -> None:
    first = ConnectorsService(connector_settings)
    await first.start()
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        admin = {"Authorization": f"Bearer {system.agent_token('acme', 'boss', role='admin')}"}
        body = {
            "platform": "telegram",
            "public_config": {"mode": "webhook"},
            "secrets": {"bot_token": "1:abc", "webhook_secret": "w"},
        }
        assert (
            await http.put("/api/admin/connectors/tg7", headers=admin, json=body)
        ).status_code == 200
    await first.stop()
    second = ConnectorsService(connector_settings)
    await second.start()
    try:
        restored = await eventually(
            lambda: second.directory.find("tg7"), what="folded configuration"
        )
        assert (
            restored.secrets == {"bot_token": "1:abc", "webhook_secret": "w"}
            and restored.tenant == "acme"
        )
    finally:
        await second.stop()
