"""Issue 14.10: one password rule (NIST SP 800-63B) for the API and the CLI."""

from collections.abc import AsyncIterator

import httpx
import pytest

from relaydesk.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    common_passwords,
    generate_password,
    password_problem,
)
from relaydesk.settings import Settings
from tests.admin.helpers import admin_command, cli, login, owner_session
from tests.system import RunningSystem, running_system

TOO_SHORT = ["", "a", "password", "12345678", "Tr0ub4dor&3", "ab cd ef gh"]
COMMON = [
    "qwerty123456",  # on the list as it is
    "QWERTY123456",  # in any case
    "\uff51\uff57\uff45\uff52\uff54\uff59\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth
    "1q2w3e4r5t6y",
    "Password2024!",  # a listed password with digits and punctuation added
    "password1234",
    "iloveyou12345",
    "football123456",
]
REPETITIVE = ["aaaaaaaaaaaa", "abababababab", "121212121212"]
GOOD = [
    "correct horse battery",
    "tps-reports-2",
    "zebra lantern quiet",
    "été-straße-Ωmega",  # any characters count, no composition rules
    "x7" + "q" * 10 + "z",
]


def test_new_passwords_follow_one_rule_naming_what_is_wrong() -> None:
    for password in TOO_SHORT:
        assert password_problem(password) == (
            f"the password is too short: at least {MIN_LENGTH} characters"
        ), password
    assert "too long" in (password_problem("abc3" * 65) or "")  # 260 characters
    assert password_problem(("abc3" * 65)[:MAX_LENGTH]) is None
    assert "too long" in (password_problem("x" * 100_000) or "")
    for password in COMMON:
        assert "common or breached" in (password_problem(password) or ""), password
    for password in REPETITIVE:
        assert "repeats" in (password_problem(password) or ""), password
    for password in GOOD:
        assert password_problem(password) is None, password
    context = ["ann.lee@acme.test", "acme", "Ann Lee"]
    for password in ["ann.lee@acme.test", "ANN.LEE@ACME.TEST", "ann.lee12345", "relaydesk2024!"]:
        assert "name, e-mail or the service" in (
            password_problem(password, context=context) or ""
        ), password
    assert password_problem("ann-lee-of-acme", context=context) is None


def test_the_shipped_list_is_tens_of_thousands_of_normalised_entries() -> None:
    known = common_passwords()
    assert 30_000 <= len(known) <= 100_000
    assert {"password", "123456", "qwerty123456", "iloveyou"} <= known
    assert all(entry == entry.casefold() and entry.strip() == entry for entry in known)


def test_generated_passwords_pass_the_rule() -> None:
    generated = {generate_password() for _ in range(50)}
    assert len(generated) == 50
    assert all(password_problem(p) is None and len(p) >= 20 for p in generated)


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings, with_history=False) as running:
        yield running


async def test_the_api_refuses_weak_passwords_for_new_and_changed_agents(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        for password, rule in [
            ("password", "at least 12 characters"),
            ("12345678", "at least 12 characters"),
            ("Password2024!", "common or breached"),
            ("aaaaaaaaaaaa", "repeats"),
            ("ann@acme.test", "name, e-mail"),
            ("v3ry-long-" * 26, "at most 256 characters"),
        ]:
            refused = await http.post(
                "/api/admin/agents",
                headers=owner,
                json={"email": "ann@acme.test", "name": "Ann", "password": password},
            )
            assert refused.status_code == 400, (password, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "invalid_payload" and rule in error["message"], error
        created = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={"email": "ann@acme.test", "name": "Ann", "password": "zebra lantern quiet"},
        )
        assert created.status_code == 201, created.text
        path = f"/api/admin/agents/{created.json()['agent_id']}"
        for password in ["a", "qwerty123456", "ann@acme.test"]:
            refused = await http.patch(path, headers=owner, json={"password": password})
            assert refused.status_code == 400, (password, refused.text)
        assert (
            await login(http, "acme", "ann@acme.test", "zebra lantern quiet")
        ).status_code == 200
        changed = await http.patch(path, headers=owner, json={"password": "violet harbour mist"})
        assert changed.status_code == 200, changed.text
        assert (
            await login(http, "acme", "ann@acme.test", "violet harbour mist")
        ).status_code == 200


async def test_the_cli_applies_the_same_rule(system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        await owner_session(system, http, "acme")
        for password, rule in [("a", "at least 12 characters"), ("qwerty123456", "common")]:
            refused = await cli(
                system.settings,
                "create-agent",
                "--tenant",
                "acme",
                "--email",
                "bob@acme.test",
                "--name",
                "Bob",
                "--password",
                password,
            )
            assert refused.returncode == 2 and rule in refused.stderr, refused.stderr
        weak_change = await cli(
            system.settings,
            "set-password",
            "--tenant",
            "acme",
            "--email",
            "boss@acme.test",
            "--password",
            "12345678",
        )
        assert weak_change.returncode == 2 and "at least 12" in weak_change.stderr
        assert (await login(http, "acme", "boss@acme.test", "correct horse")).status_code == 200
        assert (await login(http, "acme", "bob@acme.test", "a")).status_code == 401


async def test_the_tenants_name_is_refused_by_the_api_and_the_cli(system: RunningSystem) -> None:
    """The tenant's display name, not only its id, and the agent's own name on set-password:
    the API and the CLI checked only the id (and set-password not the name); sign-up did."""
    name = "Globex Corporation"
    assert (
        await admin_command(system.settings, "create-tenant", "--tenant", "globex", "--name", name)
        == 0
    )
    owner = ["--tenant", "globex", "--email", "hank@globex.test", "--name", "Hank Scorpio"]
    refused = await cli(system.settings, "create-agent", *owner, "--password", name)
    assert refused.returncode == 2 and "name, e-mail" in refused.stderr, refused.stderr
    made = await admin_command(
        system.settings, "create-agent", *owner, "--role", "owner", "--password", "volcano lair 7"
    )
    assert made == 0
    for password in (name.upper(), "hank scorpio"):
        refused = await cli(
            system.settings,
            "set-password",
            "--tenant",
            "globex",
            "--email",
            "hank@globex.test",
            "--password",
            password,
        )
        assert refused.returncode == 2 and "name, e-mail" in refused.stderr, refused.stderr
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        token = (await login(http, "globex", "hank@globex.test", "volcano lair 7")).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        agent = {"email": "ann@globex.test", "name": "Ann"}
        refused_new = await http.post(
            "/api/admin/agents", headers=headers, json={**agent, "password": name.lower()}
        )
        assert refused_new.status_code == 400 and "name, e-mail" in refused_new.text
        created = await http.post(
            "/api/admin/agents", headers=headers, json={**agent, "password": "quiet harbour 9"}
        )
        assert created.status_code == 201, created.text
        refused_change = await http.patch(
            f"/api/admin/agents/{created.json()['agent_id']}",
            headers=headers,
            json={"password": name + "!"},
        )
        assert refused_change.status_code == 400 and "name, e-mail" in refused_change.text


@pytest.fixture
async def saas(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(
        settings.model_copy(update={"mode": "saas"}), with_history=False
    ) as running:
        yield running


async def test_sign_up_applies_the_same_rule(saas: RunningSystem) -> None:
    form = {"tenant": "initech", "name": "Initech", "email": "p@initech.test", "owner_name": "P"}
    async with httpx.AsyncClient(base_url=saas.gateway.base_url) as http:
        for password, rule in [
            ("12345678", "at least 12"),
            ("password1234", "common"),
            ("initech12345", "name, e-mail"),
        ]:
            refused = await http.post("/api/signup", json={**form, "password": password})
            assert refused.status_code == 400, (password, refused.text)
            assert rule in refused.json()["error"]["message"]
        accepted = await http.post("/api/signup", json={**form, "password": "tps-reports-2"})
        assert accepted.status_code == 202, accepted.text
