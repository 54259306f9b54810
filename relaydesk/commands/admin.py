"""``relaydesk admin``: tool-mode administration over the bus (create tenants and agents)."""

import argparse
import asyncio
import getpass
import re
import sys
from collections.abc import Sequence

from agent_service.admin.passwords import hash_password
from contracts import Actor, Envelope, new_event_id
from contracts.envelope import ActorKind
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings

CLI_ACTOR = Actor(kind=ActorKind.admin, id="cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaydesk admin", description="administration commands (sent to the admin service over the bus)")
    sub = parser.add_subparsers(dest="action", required=True)
    tenant = sub.add_parser("create-tenant", help="create an account")
    tenant.add_argument("--tenant", required=True, help="tenant id, e.g. acme")
    tenant.add_argument("--name", required=True)
    tenant.add_argument("--mode", choices=["tool", "saas"], default="tool")
    agent = sub.add_parser("create-agent", help="create an agent or admin in a tenant")
    agent.add_argument("--tenant", required=True)
    agent.add_argument("--email", required=True)
    agent.add_argument("--name", required=True)
    agent.add_argument("--role", choices=["owner", "admin", "supervisor", "agent"], default="agent")
    agent.add_argument("--password", help="prompted for when omitted")
    agent.add_argument("--max-chats", type=int, default=5)
    return parser


def _agent_id(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", email.split("@")[0])[:40] + "-" + new_event_id()[-6:]


async def _send(settings: Settings, envelope: Envelope) -> int:
    bus = await Bus(settings.amqp_url, service="admin-cli").connect()
    try:
        reply = await RpcClient(bus).command("admin", envelope, timeout=settings.request_timeout_s)
    finally:
        await bus.close()
    if not reply.ok:
        print(f"refused: {reply.code}: {reply.message}", file=sys.stderr)
        return 1
    print(f"done: {envelope.type} ({len(reply.event_ids)} event(s) on the log)")
    return 0


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _parser().parse_args(list(argv))
    settings = settings or Settings()
    if args.action == "create-tenant":
        data = {"tenant_id": args.tenant, "name": args.name, "mode": args.mode}
        envelope = Envelope(type="tenant.create", tenant=args.tenant, stream="tenant", actor=CLI_ACTOR, data=data)
    else:
        password = args.password or getpass.getpass("password: ")
        data = {
            "agent_id": _agent_id(args.email), "email": args.email, "name": args.name, "role": args.role,
            "max_chats": args.max_chats, "password_hash": hash_password(password),
        }
        envelope = Envelope(type="agent.create", tenant=args.tenant, stream=f"agent:{data['agent_id']}", actor=CLI_ACTOR, data=data)
    try:
        return asyncio.run(_send(settings, envelope))
    except TimeoutError:
        print("the admin service did not answer: is `relaydesk up` (or `relaydesk agent`) running?", file=sys.stderr)
        return 2
