"""Shared steps for the admin tests: the CLI, logins over real HTTP.

``cli`` runs the command line as a process of its own (forked from one that has imported it,
tests/cli_process.py), for tests of the command line itself.
``admin_command`` runs the same command in this process, for steps that only set a tenant
up with it: a subprocess costs about half a second of CPU before it does anything.
"""

import asyncio
import inspect
import os
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from relaydesk.settings import Settings
from tests.cli_process import run_relaydesk
from tests.system import RunningSystem
from tools.cli import main as relaydesk


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELAYDESK_AMQP_URL": settings.amqp_url}
    return run_relaydesk(["admin", *args], env, timeout=60)


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, settings, *args)


async def admin_command(settings: Settings, *args: str) -> int:
    """``relaydesk admin <args>`` in this process (``tools.cli.main``), in a thread with its own
    event loop as on the command line. Returns its exit code; what it prints goes to the test's
    captured output."""
    return await asyncio.to_thread(relaydesk, ["admin", *args], settings)


async def login(http: httpx.AsyncClient, tenant: str, email: str, password: str) -> httpx.Response:
    return await http.post(
        "/api/auth/login", json={"tenant": tenant, "email": email, "password": password}
    )


async def bearer(http: httpx.AsyncClient, tenant: str, email: str, password: str) -> dict[str, str]:
    response = await login(http, tenant, email, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_tenant(
    system: RunningSystem, tenant: str, mode: str = "tool", plan: str | None = None
) -> None:
    """``relaydesk admin create-tenant``: named after its id, tool mode unless said."""
    chosen = ("--plan", plan) if plan else ()
    created = await admin_command(
        system.settings,
        "create-tenant",
        "--tenant",
        tenant,
        "--name",
        tenant.title(),
        "--mode",
        mode,
        *chosen,
    )
    assert created == 0, "relaydesk admin create-tenant failed (its output is captured above)"


async def owner_session(
    system: RunningSystem,
    http: httpx.AsyncClient,
    tenant: str,
    mode: str = "tool",
    plan: str | None = None,
) -> dict[str, str]:
    """A tenant made by the CLI (tool mode unless ``mode="saas"``, ``plan`` if given), owner in."""
    await create_tenant(system, tenant, mode, plan)
    done = await admin_command(
        system.settings,
        "create-agent",
        "--tenant",
        tenant,
        "--email",
        f"boss@{tenant}.test",
        "--name",
        "Boss",
        "--role",
        "owner",
        "--password",
        "correct horse",
    )
    assert done == 0, "relaydesk admin create-agent failed (its output is captured above)"
    return await bearer(http, tenant, f"boss@{tenant}.test", "correct horse")


async def new_agent(
    http: httpx.AsyncClient, owner: dict[str, str], tenant: str, name: str, **extra: object
) -> tuple[str, dict[str, str]]:
    """Create an agent through the API and log them in; returns (agent_id, auth header)."""
    email = f"{name}@{tenant}.test"
    created = await http.post(
        "/api/admin/agents",
        headers=owner,
        json={"email": email, "name": name.title(), "password": f"{name}-password", **extra},
    )
    assert created.status_code == 201, created.text
    return created.json()["agent_id"], await bearer(http, tenant, email, f"{name}-password")


async def eventually(
    check: Callable[[], Any | Awaitable[Any]], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``check()`` (plain or async) until it returns truthy; fail after ``timeout``.

    The pause between checks grows from 20 ms to 200 ms: a check is often a request through
    the whole system, and the suite's workers share two cores (polled every 50 ms for
    seconds, a wait cost more CPU than the work it waited for)."""
    deadline = asyncio.get_running_loop().time() + timeout
    pause = 0.02
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.2)
