"""``relaydesk audit verify``: check the archive's hash chains; report the first broken link.

    relaydesk audit verify                              # every chain
    relaydesk audit verify --tenant acme                # one tenant
    relaydesk audit verify --tenant acme --conversation c123

Exit code 0: every chain intact; 1: a broken link (printed); 2: usage or connection error.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence

from history_service.hash_chain import verify_chain
from relaydesk.settings import Settings
from relaydesk.store import database, make_client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk audit", description="tamper evidence for the event archive"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser("verify", help="walk the per-conversation hash chains in log order")
    verify.add_argument("--tenant")
    verify.add_argument("--conversation", help="needs --tenant")
    return parser


async def _verify(args: argparse.Namespace, settings: Settings) -> int:
    client = make_client(settings.mongo_url or "")
    try:

        def progress(checked: int) -> None:
            sys.stderr.write(f"\r[audit] {checked:,} events checked")
            sys.stderr.flush()

        stream = f"conv:{args.conversation}" if args.conversation else None
        result = await verify_chain(
            database(client, settings.mongo_db), args.tenant, stream, on_progress=progress
        )
    finally:
        await client.close()
    sys.stderr.write("\n")
    if result["ok"]:
        print(f"intact: {result['checked']:,} events, every hash chain verifies")
        return 0
    print(
        f"BROKEN: tenant {result['tenant']} stream {result['stream']}"
        f" at position {result['position']} (event {result['event_id']})\n"
        f"  expected hash {result['expected_hash']}\n  stored hash   {result['found_hash']}\n"
        f"  expected prev {result['expected_prev_hash']}\n"
        f"  stored prev   {result['found_prev_hash']}\n"
        f"  {result['checked']:,} events verified before it"
    )
    return 1


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _parser().parse_args(list(argv))
    settings = settings or Settings()
    if args.conversation and not args.tenant:
        print("relaydesk audit verify: --conversation needs --tenant", file=sys.stderr)
        return 2
    if not settings.mongo_url:
        print(
            "relaydesk audit verify: set MONGO_URL to the archive's MongoDB"
            " (relaydesk up prints it)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_verify(args, settings))
    except Exception as exc:  # noqa: BLE001 - a CLI reports any connection problem plainly
        print(f"relaydesk audit verify: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
