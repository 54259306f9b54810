"""``relaydesk audit verify``: check the archive's hash chains; report the first broken link.

    relaydesk audit verify                              # every chain
    relaydesk audit verify --tenant acme                # one tenant
    relaydesk audit verify --tenant acme --conversation c123

Exit code 0: every chain intact; 1: a broken link (printed); 2: usage, configuration, or the
archive cannot be reached (one line).
"""

import sys

import click

from history_service.hash_chain import verify_chain
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging


def archive_settings(ctx: click.Context) -> Settings:
    """The settings of a command reading the MongoDB archive: MONGO_URL must be set."""
    settings = settings_of(ctx)
    if not settings.mongo_url:
        raise CommandFailed(
            "configuration: MONGO_URL: not set; point it at the archive's MongoDB"
            " (relaydesk up prints it)"
        )
    return settings


@click.group(short_help="tamper evidence: audit verify")
def audit() -> None:
    """Tamper evidence for the event archive."""


@audit.command(short_help="check the archive's hash chains")
@click.option("--tenant", help="one tenant (default: every tenant)")
@click.option("--conversation", help="one conversation (needs --tenant)")
@click.pass_context
def verify(ctx: click.Context, tenant: str | None, conversation: str | None) -> int:
    """Walk the per-conversation hash chains in log order; report the first broken link.

    Exit 0: every chain intact; 1: a broken link (printed).
    """
    if conversation and not tenant:
        raise click.UsageError("--conversation needs --tenant")
    settings = archive_settings(ctx)
    tool_logging(ctx, "audit")
    return run_async(_verify(settings, tenant, conversation), settings)


async def _verify(settings: Settings, tenant: str | None, conversation: str | None) -> int:
    client = make_client(settings.mongo_url or "")
    try:

        def progress(checked: int) -> None:
            sys.stderr.write(f"\r[audit] {checked:,} events checked")
            sys.stderr.flush()

        stream = f"conv:{conversation}" if conversation else None
        result = await verify_chain(
            database(client, settings.mongo_db), tenant, stream, on_progress=progress
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
