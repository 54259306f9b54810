"""``relaydesk admin``: tool-mode administration over the bus (tenants, agents, passwords,
re-sealing connector secrets after a key rotation).

Every change is a command to the admin single writer (queue ``admin``), so it is decided
and recorded on the log exactly like an edit made in the web console.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any

import click

from contracts import Actor, Envelope, new_event_id
from contracts.commands.admin import CreateAgent, CreateTenant, RemoveAgent, UpdateAgent
from contracts.commands.billing import ClosePeriod, RecordPayment
from contracts.envelope import ActorKind
from contracts.queries.admin import AgentProfile, AgentsListQuery, TenantGetQuery, TenantInfo
from relaydesk.bus import Bus, RemoteError
from relaydesk.bus.rpc import RpcClient
from relaydesk.emails import normalize_email
from relaydesk.passwords import hash_password, password_problem
from relaydesk.settings import Settings
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging
from tools.commands.reseal import current_box, reseal_connectors
from tools.commands.tenant_option import TENANT_ID_RULE, tenant_id

CLI_ACTOR = Actor(kind=ActorKind.admin, id="cli")

Action = Callable[[Bus, RpcClient, Settings], Awaitable[int]]


def _agent_id(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", email.split("@")[0])[:40] + "-" + new_event_id()[-6:]


def _command(tenant: str, type_name: str, stream: str, data: dict[str, Any]) -> Envelope:
    return Envelope(type=type_name, tenant=tenant, stream=stream, actor=CLI_ACTOR, data=data)


async def _send(
    rpc: RpcClient, settings: Settings, envelope: Envelope, done: str, service: str = "admin"
) -> int:
    reply = await rpc.command(service, envelope, timeout=settings.request_timeout_s)
    if not reply.ok:
        raise CommandFailed(f"refused: {reply.code}: {reply.message}")
    print(f"done: {done} ({len(reply.event_ids)} event(s) on the log)")
    return 0


def _checked_password(password: str, *context: str) -> str:
    """The API's password rule (docs/security.md, 10): a broken one is a usage error."""
    problem = password_problem(password, context=context)
    if problem is not None:
        raise CommandFailed(f"refused: invalid_payload: {problem}")
    return password


async def _existing_tenant(rpc: RpcClient, settings: Settings, tenant: str) -> TenantInfo:
    """An unknown tenant is a wrong argument (exit 2), not an empty answer."""
    try:
        return await rpc.ask(TenantGetQuery(tenant=tenant), timeout=settings.request_timeout_s)
    except RemoteError as exc:
        if exc.code == "not_found":
            raise CommandFailed(f"no tenant {tenant!r}") from None
        raise


async def _agent_by_email(
    rpc: RpcClient, settings: Settings, tenant: TenantInfo, email: str
) -> AgentProfile:
    """The agent of ``email`` in a tenant already looked up (``_existing_tenant``)."""
    agents = await rpc.ask(
        AgentsListQuery(tenant=tenant.tenant_id), timeout=settings.request_timeout_s
    )
    found = next((a for a in agents if a.email == normalize_email(email)), None)
    if found is None:
        raise CommandFailed(f"no agent {email} in tenant {tenant.tenant_id!r}")
    return found


def _connected(ctx: click.Context, action: Action) -> int:
    """Run ``action`` with a bus connection; a refusal or an unreachable broker is one line."""
    settings = settings_of(ctx)
    tool_logging(ctx, "admin")

    async def run() -> int:
        bus = await Bus(
            settings.amqp_url, service="admin-cli", stream_url=settings.stream_url
        ).connect()
        try:
            return await action(bus, RpcClient(bus), settings)
        except RemoteError as exc:
            raise CommandFailed(f"refused: {exc.code}: {exc.message}") from None
        finally:
            await bus.close()

    return run_async(run(), settings)


TENANT = click.option(
    "--tenant", required=True, callback=tenant_id, help=f"tenant id, e.g. acme ({TENANT_ID_RULE})"
)
EMAIL = click.option("--email", required=True, help="the agent's e-mail address")


def _password_option(prompt: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # Prompted for (hidden) when omitted, so it need not sit in the shell's history.
    return click.option(
        "--password", prompt=prompt, hide_input=True, help=f"{prompt} (prompted for when omitted)"
    )


@click.group(short_help="tenants, agents, passwords, SaaS billing, key rotation")
def admin() -> None:
    """Administration: tenants, agents, passwords, SaaS billing, re-sealing connector secrets.

    Every change is a command to the service owning it over the bus, decided and recorded on
    the log like an edit made in the web console. Needs a running system (relaydesk up, or
    the agent and billing services) on RELAYDESK_AMQP_URL.
    """


@admin.command("create-tenant", short_help="create an account")
@TENANT
@click.option("--name", required=True, help="the account's display name")
@click.option(
    "--mode",
    type=click.Choice(["tool", "saas"]),
    default="tool",
    show_default=True,
    help="tool: accounts made here; saas: plans and bills",
)
@click.option("--plan", help="SaaS: the starting plan (default: the catalogue's default)")
@click.pass_context
def create_tenant(ctx: click.Context, tenant: str, name: str, mode: str, plan: str | None) -> int:
    """Create an account."""
    data = {"tenant_id": tenant, "name": name, "mode": mode, **({"plan": plan} if plan else {})}

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        envelope = _command(tenant, CreateTenant.TYPE, "tenant", data)
        return await _send(rpc, settings, envelope, f"tenant {tenant} created")

    return _connected(ctx, action)


@admin.command("create-agent", short_help="create an agent, supervisor, admin or owner")
@TENANT
@EMAIL
@click.option("--name", required=True, help="the agent's display name")
@click.option(
    "--role",
    type=click.Choice(["owner", "admin", "supervisor", "agent"]),
    default="agent",
    show_default=True,
    help="what they may do (docs/admin.md)",
)
@_password_option("password")
@click.option(
    "--max-chats",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="conversations they hold at once",
)
@click.pass_context
def create_agent(
    ctx: click.Context,
    tenant: str,
    email: str,
    name: str,
    role: str,
    password: str,
    max_chats: int,
) -> int:
    """Create an agent (or an owner, admin, supervisor) in a tenant."""
    _checked_password(password, email, name, tenant)  # before connecting: at once

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        # and with the tenant's name, as the API and sign-up check it
        _checked_password(password, (await _existing_tenant(rpc, settings, tenant)).name)
        data = {
            "agent_id": _agent_id(email),
            "email": email,
            "name": name,
            "role": role,
            "max_chats": max_chats,
            "password_hash": hash_password(password),
        }
        envelope = _command(tenant, CreateAgent.TYPE, f"agent:{data['agent_id']}", data)
        done = f"{role} {email} created in {tenant} as {data['agent_id']}"
        return await _send(rpc, settings, envelope, done)

    return _connected(ctx, action)


@admin.command("set-password", short_help="set an agent's password (sessions end)")
@TENANT
@EMAIL
@_password_option("new password")
@click.pass_context
def set_password(ctx: click.Context, tenant: str, email: str, password: str) -> int:
    """Set an agent's password (their open sessions end)."""
    _checked_password(password, email, tenant)  # before connecting: at once

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        known = await _existing_tenant(rpc, settings, tenant)
        agent = await _agent_by_email(rpc, settings, known, email)
        _checked_password(password, agent.name, known.name)  # as the API checks it
        agent_id = agent.agent_id
        changes = {"password_hash": hash_password(password)}
        data = {"agent_id": agent_id, "changes": changes}
        envelope = _command(tenant, UpdateAgent.TYPE, f"agent:{agent_id}", data)
        return await _send(rpc, settings, envelope, f"password of {email} changed")

    return _connected(ctx, action)


@admin.command("remove-agent", short_help="remove an agent (tokens stop working)")
@TENANT
@EMAIL
@click.pass_context
def remove_agent(ctx: click.Context, tenant: str, email: str) -> int:
    """Remove an agent (their tokens stop working)."""

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        known = await _existing_tenant(rpc, settings, tenant)
        agent_id = (await _agent_by_email(rpc, settings, known, email)).agent_id
        data = {"agent_id": agent_id}
        envelope = _command(tenant, RemoveAgent.TYPE, f"agent:{agent_id}", data)
        return await _send(rpc, settings, envelope, f"{email} removed")

    return _connected(ctx, action)


@admin.command("list-agents", short_help="list a tenant's agents")
@TENANT
@click.pass_context
def list_agents(ctx: click.Context, tenant: str) -> int:
    """List a tenant's agents: id, e-mail, role, name (tab-separated)."""

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        await _existing_tenant(rpc, settings, tenant)
        query = AgentsListQuery(tenant=tenant)
        for agent in await rpc.ask(query, timeout=settings.request_timeout_s):
            print(f"{agent.agent_id}\t{agent.email}\t{agent.role}\t{agent.name}")
        return 0

    return _connected(ctx, action)


def _month(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A click callback: ``--period`` as the billing command's model takes it, said plainly."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter(f"{value!r}: a month is YYYY-MM, e.g. 2026-11")
    return value


@admin.command("close-period", short_help="SaaS: close an ended month, issue its invoice")
@TENANT
@click.option("--period", required=True, callback=_month, help="an ended month, YYYY-MM")
@click.pass_context
def close_period(ctx: click.Context, tenant: str, period: str) -> int:
    """SaaS: close an ended billing month now and issue its invoice (billing does this itself
    on the 1st). The month under way is refused: its invoice would miss the rest of the
    month. Closing a closed month again changes nothing."""

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        await _existing_tenant(rpc, settings, tenant)  # not "billing applies to SaaS only"
        envelope = _command(tenant, ClosePeriod.TYPE, f"billing:{tenant}", {"period": period})
        done = f"{period} closed for {tenant}"
        return await _send(rpc, settings, envelope, done, service="billing")

    return _connected(ctx, action)


@admin.command("record-payment", short_help="SaaS: record a manual payment")
@TENANT
@click.option("--invoice", required=True, help="invoice number, e.g. ACME-0001")
@click.option(
    "--amount-cents", type=click.IntRange(min=1), required=True, help="the amount paid, in cents"
)
@click.option("--reference", help="bank transfer reference or similar")
@click.pass_context
def record_payment(
    ctx: click.Context, tenant: str, invoice: str, amount_cents: int, reference: str | None
) -> int:
    """SaaS: record a manual payment against an invoice."""
    data = {
        "number": invoice,
        "amount_cents": amount_cents,
        "method": "manual",
        **({"reference": reference} if reference else {}),
    }

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        await _existing_tenant(rpc, settings, tenant)
        envelope = _command(tenant, RecordPayment.TYPE, f"billing:{tenant}", data)
        done = f"payment of {amount_cents} cents recorded on {invoice}"
        return await _send(rpc, settings, envelope, done, service="billing")

    return _connected(ctx, action)


@admin.command("reseal-connectors", short_help="re-seal connector secrets after a key rotation")
@click.pass_context
def reseal(ctx: click.Context) -> int:
    """After a RELAYDESK_SECRETS_KEY rotation: seal every connector's secrets again under the
    current key (then the previous key can be removed).

    Needs the connectors service's RELAYDESK_SECRETS_KEY and RELAYDESK_SECRETS_PREVIOUS_KEYS.
    Exit 1 when a connector could not be re-sealed.
    """

    box = current_box(settings_of(ctx))

    async def action(bus: Bus, rpc: RpcClient, settings: Settings) -> int:
        return await reseal_connectors(bus, box, settings)

    return _connected(ctx, action)
