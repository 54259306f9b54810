"""Issue 14, item 6: every per-address limit is keyed by the real client address.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by default: 53 logins from loopback,
each naming another address, all got through. Now only ``RELAYDESK_TRUSTED_PROXIES`` are
believed; behind them the client they name is the one counted, however many addresses a
client writes into the header itself.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from relaydesk.settings import Settings
from tests.system import RunningSystem, running_system

ROOT = Path(__file__).resolve().parents[2]


def wrong(attempt: int) -> dict[str, str]:
    """A failing login, each for another account (the account lockout stays out of it)."""
    return {"tenant": "acme", "email": f"nobody{attempt}@acme.test", "password": "not it"}


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# The burst as by default (20 attempts) with almost no refill: the count is what is tested,
# not how fast password checks run on a busy machine.
SLOW_REFILL = {"auth_rate_per_min": 0.1}


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(
        settings.model_copy(update=SLOW_REFILL), with_history=False
    ) as running:
        yield running


async def test_forwarded_for_from_an_untrusted_peer_buys_no_fresh_budget(
    system: RunningSystem,
) -> None:
    assert system.settings.trusted_proxies == ""  # the default: nobody's headers believed
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        codes = [
            code(
                await http.post(
                    "/api/auth/login",
                    json=wrong(attempt),
                    headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
                )
            )
            for attempt in range(53)
        ]
    assert codes[:20] == ["invalid_credentials"] * 20  # the burst (RELAYDESK_AUTH_RATE_BURST)
    assert codes[20:] == ["rate_limited"] * 33, codes


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[RunningSystem]:
    trusting = settings.model_copy(
        update={"trusted_proxies": "127.0.0.1, ::1", "health_token": None, **SLOW_REFILL}
    )
    async with running_system(trusting, with_history=False) as running:
        yield running


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    behind_proxy: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=behind_proxy.gateway.base_url) as http:
        attempts = iter(range(100))

        async def login(forwarded_for: str) -> str:
            response = await http.post(
                "/api/auth/login",
                json=wrong(next(attempts)),
                headers={"X-Forwarded-For": forwarded_for},
            )
            return code(response)

        first = [await login("203.0.113.7") for _ in range(22)]
        assert first == ["invalid_credentials"] * 20 + ["rate_limited"] * 2
        # The proxy appends the address it saw; what the client wrote before it is not believed.
        assert await login("10.9.9.9, 203.0.113.7") == "rate_limited"
        assert await login("203.0.113.8") == "invalid_credentials"  # another client
        # The health details are for loopback clients: a client forwarded from outside is not.
        outside = await http.get("/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        assert outside.json() == {"status": "alive"}
        local = await http.get("/healthz")
        assert {"sockets", "log_position"} <= set(local.json())


def test_the_compose_nginx_is_the_gateways_trusted_proxy() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx_address = services["nginx"]["networks"]["default"]["ipv4_address"]
    for name in ("gateway-1", "gateway-2"):
        trusted = services[name]["environment"]["RELAYDESK_TRUSTED_PROXIES"]
        assert Settings(trusted_proxies=trusted).trusted_proxy_list() == [nginx_address]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert nginx_address.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    nginx = (ROOT / "docker/nginx.conf").read_text()
    # nginx names the client it saw (appended last: what the gateway believes) on every route.
    proxied = nginx.count("proxy_pass http://")  # the gateways' routes and the webhooks'
    assert proxied >= 2
    assert nginx.count("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;") == proxied
    assert nginx.count("proxy_set_header X-Forwarded-Proto $scheme;") == proxied
