"""Credential stuffing from one address: many e-mails, one client → 429 with Retry-After.

The gateway allows 5 attempts per address here (one more every 10 s). The attacker
connects from 127.0.0.2, everyone else from 127.0.0.1, so the limit is shown to be per
address and not global. Each attempt names a different account: the per-account lockout
never triggers, only the new limit can refuse.
"""

import httpx
from structlog.testing import capture_logs

from tests.admin.helpers import login, owner_session
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system

BURST = 5


async def test_many_emails_from_one_address_are_answered_429_with_retry_after(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> None:
    async with shared_system(
        vhosts, mongo_server, auth_rate_burst=BURST, auth_rate_per_min=6.0
    ) as system:
        attacker = httpx.AsyncClient(
            base_url=system.gateway.base_url,
            transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
        )
        async with httpx.AsyncClient(base_url=system.gateway.base_url) as http, attacker:
            await owner_session(system, http, "acme")
            with capture_logs() as logs:
                codes = [
                    (await login(attacker, "acme", f"user{i}@acme.test", f"guess-{i}")).status_code
                    for i in range(BURST + 3)
                ]
                assert codes == [401] * BURST + [429] * 3
                limited = await login(
                    attacker, "acme", "boss@acme.test", "correct horse"
                )  # even the right password
                assert (
                    limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
                )
                assert 1 <= int(limited.headers["Retry-After"]) <= 10
                # The budget is shared: switching to refresh or sign-up buys nothing.
                refresh = await attacker.post(
                    "/api/auth/refresh", json={"refresh_token": "abc.def.ghi"}
                )
                signup = await attacker.post(
                    "/api/signup",
                    json={
                        "tenant": "t1",
                        "name": "T",
                        "email": "a@t.test",
                        "owner_name": "A",
                        "password": "long-password-1",
                    },
                )
                assert refresh.status_code == 429 and signup.status_code == 429, (
                    refresh.text,
                    signup.text,
                )
                assert "Retry-After" in refresh.headers and "Retry-After" in signup.headers
            # Another address is untouched, and the account was never locked.
            assert (await login(http, "acme", "boss@acme.test", "correct horse")).status_code == 200
            assert not [e for e in logs if "guess-" in repr(e) or "correct horse" in repr(e)]
            assert [e["path"] for e in logs if e["event"] == "credential_rate_limited"][:1] == [
                "/api/auth/login"
            ]
