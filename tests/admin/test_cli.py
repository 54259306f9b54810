"""``relaydesk admin`` as a real subprocess against the running admin service."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.admin.helpers import admin_command, cli, eventually, login, owner_session
from tests.system import RunningSystem


async def test_cli_manages_agents_and_logins_follow(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        await owner_session(system, http, "acme")
        created = await cli(
            system.settings,
            "create-agent",
            "--tenant",
            "acme",
            "--email",
            "Ann@Acme.test",
            "--name",
            "Ann",
            "--password",
            "first-password",
        )
        assert (
            created.returncode == 0
            and "agent ann@acme.test created in acme" in created.stdout.lower()
        )
        listed = await cli(system.settings, "list-agents", "--tenant", "acme")
        assert (
            "ann@acme.test\tagent\tAnn" in listed.stdout
            and "boss@acme.test\towner" in listed.stdout
        )
        old_token = (await login(http, "acme", "ann@acme.test", "first-password")).json()[
            "access_token"
        ]
        changed = await cli(
            system.settings,
            "set-password",
            "--tenant",
            "acme",
            "--email",
            "ann@acme.test",
            "--password",
            "second-password",
        )
        assert changed.returncode == 0, changed.stderr
        assert (await login(http, "acme", "ann@acme.test", "first-password")).status_code == 401
        assert (await login(http, "acme", "ann@acme.test", "second-password")).status_code == 200

        async def old_token_refused() -> bool:
            return (
                await http.get("/api/canned", headers={"Authorization": f"Bearer {old_token}"})
            ).status_code == 401

        await eventually(old_token_refused, timeout=5, what="old token refused")
        removed = await cli(
            system.settings, "remove-agent", "--tenant", "acme", "--email", "ann@acme.test"
        )
        assert removed.returncode == 0
        assert (await login(http, "acme", "ann@acme.test", "second-password")).status_code == 401


async def test_cli_refusals_are_reported_with_their_reason(
    system: RunningSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await cli(system.settings, "create-tenant", "--tenant", "acme", "--name", "Acme")
    ).returncode == 0
    again = await cli(system.settings, "create-tenant", "--tenant", "acme", "--name", "Acme")
    assert again.returncode == 2 and "already_exists" in again.stderr
    nowhere = await cli(
        system.settings,
        "create-agent",
        "--tenant",
        "nowhere",
        "--email",
        "a@b.c",
        "--name",
        "A",
        "--password",
        "a-strong-pass-1",
    )
    # looked up first (its name is part of the password rule), like the other commands
    assert nowhere.returncode == 2 and "no tenant 'nowhere'" in nowhere.stderr, nowhere.stderr
    unknown = await cli(
        system.settings, "remove-agent", "--tenant", "acme", "--email", "ghost@acme.test"
    )
    assert unknown.returncode == 2 and "no agent ghost@acme.test in tenant 'acme'" in unknown.stderr
    capsys.readouterr()
    # An unknown tenant is a wrong argument: said in one line, not an empty list and exit 0.
    assert await admin_command(system.settings, "list-agents", "--tenant", "nowhere") == 2
    # (stdout also holds this test process's own log lines: only agent rows have tabs)
    out, err = capsys.readouterr()
    assert "\t" not in out and err == "relaydesk admin list-agents: no tenant 'nowhere'\n"
    assert await admin_command(system.settings, "list-agents", "--tenant", "acme") == 0
    assert "\t" not in capsys.readouterr().out  # a tenant without agents: nothing to list


async def test_cli_says_what_is_wrong_with_a_plan_an_address_a_month_or_a_tenant(
    system: RunningSystem,
) -> None:
    """Each was taken (an unknown plan silently became the free one, a word without an @
    became an account nobody could sign in to, next month got its invoice now, this month got
    one of its usage so far), or refused with a message about something else ("billing
    applies to SaaS accounts only" for a tenant that does not exist, a pydantic pattern for a
    month)."""

    async def refused(*args: str) -> str:
        done = await cli(system.settings, *args)
        assert done.returncode == 2 and done.stdout == "", (args, done.stdout, done.stderr)
        [line] = done.stderr.splitlines()  # one line, no traceback
        return line

    gold = await refused(
        "create-tenant", "--tenant", "cli-saas", "--name", "S", "--mode", "saas", "--plan", "gold"
    )
    assert gold == (
        "relaydesk admin create-tenant: refused: invalid_payload: "
        "plan: no plan 'gold' (the plans are business, free, team)"
    )
    tool = await refused("create-tenant", "--tenant", "cli-tool", "--name", "T", "--plan", "team")
    assert tool.endswith("refused: invalid_payload: plan: only a SaaS tenant has a plan")
    made = await cli(
        system.settings,
        "create-tenant",
        "--tenant",
        "cli-saas",
        "--name",
        "S",
        "--mode",
        "saas",
        "--plan",
        "team",
    )
    assert made.returncode == 0, made.stderr

    address = await refused(
        "create-agent",
        "--tenant",
        "cli-saas",
        "--email",
        "notanemail",
        "--name",
        "N",
        "--password",
        "a-strong-pass-1",
    )
    assert address.endswith(
        "refused: invalid_payload: email: 'notanemail' is not an e-mail address"
    )

    later = await refused("close-period", "--tenant", "cli-saas", "--period", "2999-01")
    assert "refused: invalid_payload: period: 2999-01 has not begun" in later
    this_month = datetime.now(UTC)
    ends = (this_month.replace(day=1) + timedelta(days=32)).replace(day=1)
    under_way = await refused(
        "close-period", "--tenant", "cli-saas", "--period", f"{this_month:%Y-%m}"
    )
    assert under_way == (
        f"relaydesk admin close-period: refused: invalid_payload: period: {this_month:%Y-%m}"
        f" has not ended (it ends on {ends:%Y-%m-%d}); a month is closed once it is over"
    )
    month = await refused("close-period", "--tenant", "cli-saas", "--period", "2026-13")
    assert "Invalid value for '--period': '2026-13': a month is YYYY-MM, e.g. 2026-11" in month
    for command in (
        ("close-period", "--tenant", "nowhere", "--period", "2026-01"),
        (
            "record-payment",
            "--tenant",
            "nowhere",
            "--invoice",
            "NOWHERE-0001",
            "--amount-cents",
            "100",
        ),
    ):
        assert await refused(*command) == f"relaydesk admin {command[0]}: no tenant 'nowhere'"
    zero = await refused(
        "record-payment",
        "--tenant",
        "cli-saas",
        "--invoice",
        "CLI-SAAS-0001",
        "--amount-cents",
        "0",
    )
    assert "Invalid value for '--amount-cents': 0 is not in the range x>=1" in zero
