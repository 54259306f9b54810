"""``relaydesk admin``: tool-mode administration over the bus (tenants, agents, passwords).

Every change is a command to the admin single writer (queue ``admin``), so it is decided
and recorded on the log exactly like an edit made in the web console.
"""

import argparse
import asyncio
import getpass
import re
import sys
from collections.abc import Sequence
from typing import Any

from contracts import Actor, Envelope, new_event_id
from contracts.commands.admin import CreateAgent, CreateTenant, RemoveAgent, UpdateAgent
from contracts.commands.billing import ClosePeriod, RecordPayment
from contracts.envelope import ActorKind
from contracts.queries.admin import AgentsListQuery
from relaydesk.bus import Bus, RemoteError
from relaydesk.bus.rpc import RpcClient
from relaydesk.emails import normalize_email
from relaydesk.passwords import hash_password, password_problem
from relaydesk.settings import Settings

CLI_ACTOR = Actor(kind=ActorKind.admin, id="cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk admin",
        description="administration commands (sent to the admin service over the bus)",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    tenant = sub.add_parser("create-tenant", help="create an account")
    tenant.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    tenant.add_argument("--name", required=True)
    tenant.add_argument("--mode", choices=["tool", "saas"], default="tool")
    tenant.add_argument("--plan", help="SaaS: the starting plan (default: the catalogue's default)")
    agent = sub.add_parser("create-agent", help="create an agent or admin in a tenant")
    agent.add_argument("--tenant", required=True)
    agent.add_argument("--email", required=True)
    agent.add_argument("--name", required=True)
    agent.add_argument("--role", choices=["owner", "admin", "supervisor", "agent"], default="agent")
    agent.add_argument("--password", help="prompted for when omitted")
    agent.add_argument("--max-chats", type=int, default=5)
    password = sub.add_parser(
        "set-password", help="set an agent's password (their open sessions end)"
    )
    password.add_argument("--tenant", required=True)
    password.add_argument("--email", required=True)
    password.add_argument("--password", help="prompted for when omitted")
    remove = sub.add_parser("remove-agent", help="remove an agent (their tokens stop working)")
    remove.add_argument("--tenant", required=True)
    remove.add_argument("--email", required=True)
    listing = sub.add_parser("list-agents", help="list a tenant's agents")
    listing.add_argument("--tenant", required=True)
    close = sub.add_parser(
        "close-period",
        help=(
            "SaaS: close a billing month now and issue its invoice"
            " (the scheduler does this on the 1st)"
        ),
    )
    close.add_argument("--tenant", required=True)
    close.add_argument("--period", required=True, help="YYYY-MM")
    payment = sub.add_parser(
        "record-payment", help="SaaS: record a manual payment against an invoice"
    )
    payment.add_argument("--tenant", required=True)
    payment.add_argument("--invoice", required=True, help="invoice number, e.g. ACME-0001")
    payment.add_argument("--amount-cents", type=int, required=True)
    payment.add_argument("--reference", help="bank transfer reference or similar")
    return parser


def _agent_id(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", email.split("@")[0])[:40] + "-" + new_event_id()[-6:]


def _command(tenant: str, type_name: str, stream: str, data: dict[str, Any]) -> Envelope:
    return Envelope(type=type_name, tenant=tenant, stream=stream, actor=CLI_ACTOR, data=data)


async def _send(
    rpc: RpcClient, settings: Settings, envelope: Envelope, done: str, service: str = "admin"
) -> int:
    reply = await rpc.command(service, envelope, timeout=settings.request_timeout_s)
    if not reply.ok:
        print(f"refused: {reply.code}: {reply.message}", file=sys.stderr)
        return 1
    print(f"done: {done} ({len(reply.event_ids)} event(s) on the log)")
    return 0


def _password_refused(password: str, *context: str) -> bool:
    """The API's password rule (docs/security.md, 10); prints the reason when it is broken."""
    problem = password_problem(password, context=context)
    if problem is not None:
        print(f"refused: invalid_payload: {problem}", file=sys.stderr)
    return problem is not None


async def _agent_id_by_email(
    rpc: RpcClient, settings: Settings, tenant: str, email: str
) -> str | None:
    agents = await rpc.ask(AgentsListQuery(tenant=tenant), timeout=settings.request_timeout_s)
    return next((a.agent_id for a in agents if a.email == normalize_email(email)), None)


async def _run(args: argparse.Namespace, settings: Settings, rpc: RpcClient) -> int:
    if args.action == "create-tenant":
        data = {
            "tenant_id": args.tenant,
            "name": args.name,
            "mode": args.mode,
            **({"plan": args.plan} if args.plan else {}),
        }
        return await _send(
            rpc,
            settings,
            _command(args.tenant, CreateTenant.TYPE, "tenant", data),
            f"tenant {args.tenant} created",
        )
    if args.action == "create-agent":
        password = args.password or getpass.getpass("password: ")
        if _password_refused(password, args.email, args.name, args.tenant):
            return 1
        data = {
            "agent_id": _agent_id(args.email),
            "email": args.email,
            "name": args.name,
            "role": args.role,
            "max_chats": args.max_chats,
            "password_hash": hash_password(password),
        }
        envelope = _command(args.tenant, CreateAgent.TYPE, f"agent:{data['agent_id']}", data)
        return await _send(
            rpc,
            settings,
            envelope,
            f"{args.role} {args.email} created in {args.tenant} as {data['agent_id']}",
        )
    if args.action == "close-period":
        envelope = _command(
            args.tenant, ClosePeriod.TYPE, f"billing:{args.tenant}", {"period": args.period}
        )
        return await _send(
            rpc, settings, envelope, f"{args.period} closed for {args.tenant}", service="billing"
        )
    if args.action == "record-payment":
        data = {
            "number": args.invoice,
            "amount_cents": args.amount_cents,
            "method": "manual",
            **({"reference": args.reference} if args.reference else {}),
        }
        envelope = _command(args.tenant, RecordPayment.TYPE, f"billing:{args.tenant}", data)
        return await _send(
            rpc,
            settings,
            envelope,
            f"payment of {args.amount_cents} cents recorded on {args.invoice}",
            service="billing",
        )
    if args.action == "list-agents":
        for agent in await rpc.ask(
            AgentsListQuery(tenant=args.tenant), timeout=settings.request_timeout_s
        ):
            print(f"{agent.agent_id}\t{agent.email}\t{agent.role}\t{agent.name}")
        return 0
    agent_id = await _agent_id_by_email(rpc, settings, args.tenant, args.email)
    if agent_id is None:
        print(f"refused: not_found: no agent {args.email} in {args.tenant}", file=sys.stderr)
        return 1
    if args.action == "remove-agent":
        return await _send(
            rpc,
            settings,
            _command(args.tenant, RemoveAgent.TYPE, f"agent:{agent_id}", {"agent_id": agent_id}),
            f"{args.email} removed",
        )
    password = args.password or getpass.getpass("new password: ")
    if _password_refused(password, args.email, args.tenant):
        return 1
    changes = {"password_hash": hash_password(password)}
    envelope = _command(
        args.tenant,
        UpdateAgent.TYPE,
        f"agent:{agent_id}",
        {"agent_id": agent_id, "changes": changes},
    )
    return await _send(rpc, settings, envelope, f"password of {args.email} changed")


async def _connected(args: argparse.Namespace, settings: Settings) -> int:
    bus = await Bus(
        settings.amqp_url, service="admin-cli", stream_url=settings.stream_url
    ).connect()
    try:
        return await _run(args, settings, RpcClient(bus))
    except RemoteError as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await bus.close()


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _parser().parse_args(list(argv))
    try:
        return asyncio.run(_connected(args, settings or Settings()))
    except TimeoutError:
        print(
            "the admin service did not answer: is `relaydesk up` (or `relaydesk agent`) running?",
            file=sys.stderr,
        )
        return 2
