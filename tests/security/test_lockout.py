"""Issue 14.3: one spelling of an account for lookup and lockout, and one lockout for every
admin service instance."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent_service.admin.lockout import LOCK_S, MAX_FAILURES, WINDOW_S, StoredLockout
from agent_service.admin.service import AdminService
from relaydesk.bus import Bus, RemoteError
from relaydesk.bus.rpc import RpcClient
from relaydesk.emails import normalize_email
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import login, owner_session
from tests.system import RunningSystem, running_system

PASSWORD = "correct horse"  # owner_session's
# The same address as typed by someone who wants a fresh budget, or the right one by mistake
VARIANTS = [
    " boss@acme.test",
    "\tboss@acme.test",
    "\u00a0boss@acme.test",  # no-break space
    "\u3000boss@acme.test",  # ideographic space
    "boss@acme.test\u2003",  # em space
    "\u200bboss@acme.test",  # zero-width space
    "BOSS@ACME.TEST",
    "Boss@Acme.Test ",
    "".join(chr(ord(c) + 0xFEE0) for c in "boss@acme.test"),  # fullwidth
    "bo ss@acme.test",
]


def test_every_variant_has_the_one_form() -> None:
    assert {normalize_email(v) for v in VARIANTS} == {"boss@acme.test"}


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    # a larger per-address budget: this test is about the per-account lockout
    roomy = settings.model_copy(update={"auth_rate_burst": 200, "auth_rate_per_min": 200.0})
    async with running_system(roomy, with_history=False) as running:
        yield running


async def test_after_the_lockout_no_spelling_of_the_address_logs_in(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        await owner_session(system, http, "acme")
        for _ in range(MAX_FAILURES):
            assert (await login(http, "acme", "boss@acme.test", "wrong")).status_code == 401
        assert (await login(http, "acme", "boss@acme.test", PASSWORD)).status_code == 429
        for variant in VARIANTS:
            answer = await login(http, "acme", variant, PASSWORD)
            assert answer.status_code == 429, (variant, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "locked"


async def test_variants_share_one_budget(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        await owner_session(system, http, "acme")
        # each failure under another spelling: together they are the account's five
        for variant in VARIANTS[:MAX_FAILURES]:
            assert (await login(http, "acme", variant, "wrong")).status_code == 401, variant
        assert (await login(http, "acme", "boss@acme.test", PASSWORD)).status_code == 429
        assert (await login(http, "acme", VARIANTS[-1], PASSWORD)).status_code == 429


async def test_the_spelling_used_at_creation_does_not_make_a_second_account(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        first = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={"email": "\u3000Ann@Acme.test", "name": "Ann", "password": "zebra lantern quiet"},
        )
        assert first.status_code == 201, first.text
        for twin in ["ann@acme.test", "\uff21\uff2e\uff2e@acme.test", "ann@acme.test\u200b"]:
            again = await http.post(
                "/api/admin/agents",
                headers=owner,
                json={"email": twin, "name": "Ann 2", "password": "zebra lantern quiet"},
            )
            assert again.status_code == 409, (twin, again.text)
        assert (
            await login(http, "acme", "ann@acme.test", "zebra lantern quiet")
        ).status_code == 200
        listed = (await http.get("/api/admin/agents", headers=owner)).json()
        assert sorted(a["email"] for a in listed) == ["ann@acme.test", "boss@acme.test"]


async def test_two_admin_instances_count_the_same_failures(system: RunningSystem, bus: Bus) -> None:
    second = AdminService(system.settings)  # a second instance answering the same queries
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
            await owner_session(system, http, "acme")
        rpc = RpcClient(bus)

        async def check(password: str) -> str:
            try:
                await rpc.query(
                    "admin",
                    "auth.check_password",
                    {"tenant": "acme", "email": "boss@acme.test", "password": password},
                    timeout=10,
                )
            except RemoteError as exc:
                return exc.code
            return "ok"

        # the queries are shared out between the two instances; the count is not
        assert [await check("wrong") for _ in range(MAX_FAILURES)] == [
            "invalid_credentials"
        ] * MAX_FAILURES
        assert [await check(PASSWORD) for _ in range(4)] == ["locked"] * 4
    finally:
        await second.stop()


async def test_the_stored_lockout_counts_atomically_windows_and_expires(
    mongo_url: str, mongo_db_name: str
) -> None:
    client = make_client(mongo_url)
    db = database(client, mongo_db_name)
    now = [datetime(2026, 3, 2, 10, 0, tzinfo=UTC)]
    first, second = (StoredLockout(db, clock=lambda: now[0]) for _ in range(2))
    try:
        # four failures at once from two instances: none is lost
        await asyncio.gather(*(lockout.failed("t", "e@x.test") for lockout in [first, second] * 2))
        assert await first.locked_for("t", "e@x.test") == 0
        await second.failed("t", " E@X.TEST\u00a0")  # the fifth, spelt otherwise, elsewhere
        assert await first.locked_for("t", "e@x.test") == LOCK_S
        assert await second.locked_for("t", "\u3000e@x.test") == LOCK_S
        now[0] += timedelta(seconds=LOCK_S + 1)
        assert await first.locked_for("t", "e@x.test") == 0
        # four failures, then the window passes: the next four start a new count
        for _ in range(MAX_FAILURES - 1):
            await first.failed("t", "e@x.test")
        now[0] += timedelta(seconds=WINDOW_S + 1)
        for _ in range(MAX_FAILURES - 1):
            await second.failed("t", "e@x.test")
        assert await first.locked_for("t", "e@x.test") == 0
        await first.failed("t", "e@x.test")
        assert await first.locked_for("t", "e@x.test") == LOCK_S
        assert await first.locked_for("other", "e@x.test") == 0  # per tenant
    finally:
        await client.close()
