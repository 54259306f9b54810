"""``relaydesk audit``: tamper evidence for the event archive.

    relaydesk audit verify                              # every chain, the checkpoints, the log
    relaydesk audit verify --tenant acme [--conversation c123]
    relaydesk audit verify --file acme.jsonl --public-key ed25519:…   # offline, an export
    relaydesk audit public-key                          # the checkpoints' public keys

Exit code 0: intact; 1: a problem found (each printed, the first bad position first);
2: usage, configuration, or the archive or the broker cannot be reached (one line).
"""

from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaydesk.keys import SecretNotUsable, key_ring
from relaydesk.settings import Settings
from relaydesk.signing import BadPublicKey, Signer, keys_by_id, parse_public_key, public_text
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging
from tools.commands.tenant_option import tenant_id
from tools.progress import ProgressLine
from tools.replay.export_file import read_export
from tools.replay.verify import UnknownTenant, Verdict, verify_file, verify_online


def archive_settings(ctx: click.Context) -> Settings:
    """The settings of a command reading the MongoDB archive: MONGO_URL must be set."""
    settings = settings_of(ctx)
    if not settings.mongo_url:
        raise CommandFailed(
            "configuration: MONGO_URL: not set; point it at the archive's MongoDB"
            " (relaydesk up prints it)"
        )
    return settings


@click.group(short_help="tamper evidence: audit verify, audit public-key")
def audit() -> None:
    """Tamper evidence for the event archive."""


@audit.command(short_help="hash chains, signed checkpoints and the log (or an export file)")
@click.option("--tenant", callback=tenant_id, help="one tenant (default: every tenant)")
@click.option("--conversation", help="one conversation (needs --tenant)")
@click.option(
    "--file",
    "export_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="an export to verify offline, with no access to the system",
)
@click.option(
    "--public-key",
    "public_key_texts",
    multiple=True,
    help="ed25519:… (repeatable); default: derived from RELAYDESK_AUDIT_SIGNING_KEY",
)
@click.option("--no-log", is_flag=True, help="check the archive against its checkpoints only")
@click.pass_context
def verify(
    ctx: click.Context,
    tenant: str | None,
    conversation: str | None,
    export_file: Path | None,
    public_key_texts: tuple[str, ...],
    no_log: bool,
) -> int:
    """Check the archive's hash chains, its signed checkpoints and the log; or an export.

    Exit 0: intact; 1: a problem found (each printed, the first bad position first).
    """
    if conversation and not tenant and not export_file:
        raise click.UsageError("--conversation needs --tenant")
    if export_file is not None:
        keys = _given_keys(public_key_texts) or _configured_keys(settings_of(ctx))
        try:
            export = read_export(export_file)
        except (OSError, ValueError) as exc:
            raise CommandFailed(f"{export_file}: {exc}") from None
        if not export.verifiable:
            raise CommandFailed(f"{export_file}: an export of the first format has no hash links")
        return print_verdict(verify_file(export, keys))
    settings = archive_settings(ctx)
    keys = _given_keys(public_key_texts) or _configured_keys(settings)
    tool_logging(ctx, "audit")

    line = ProgressLine()

    def progress(checked: int) -> None:
        line.show(f"[audit] {checked:,} events checked")

    try:
        verdict = run_async(
            verify_online(
                settings, tenant, conversation, keys, with_log=not no_log, on_progress=progress
            ),
            settings,
        )
    except UnknownTenant:
        raise CommandFailed(f"no tenant {tenant!r}: no event of it {_looked_in(no_log)}") from None
    finally:
        line.finish()
    if conversation and verdict.checked_nothing:
        # as replay and export say a selection matched nothing (README "Exit codes")
        print(
            f"no match: conversation {conversation} of tenant {tenant} has no event"
            f" {_looked_in(no_log)} or in a signed checkpoint; nothing verified"
        )
        return 1
    return print_verdict(verdict)


@audit.command("public-key", short_help="print the public keys the checkpoints are signed with")
@click.pass_context
def public_key(ctx: click.Context) -> int:
    """Print the public keys (current and previous) that verify the signed checkpoints."""
    try:
        ring = key_ring(settings_of(ctx), "audit_signing_key")
    except SecretNotUsable as exc:
        raise CommandFailed(f"configuration: {exc}") from None
    signer = Signer(ring)
    for key_id, key in signer.public_keys.items():
        label = "current" if key_id == signer.key_id else "previous"
        print(f"{public_text(key)}  key id {key_id} ({label})")
    return 0


def _looked_in(no_log: bool) -> str:
    return "in the archive" if no_log else "in the archive or on the log"


def _given_keys(texts: tuple[str, ...]) -> dict[str, Ed25519PublicKey]:
    try:
        return keys_by_id(parse_public_key(text) for text in texts) if texts else {}
    except BadPublicKey as exc:
        raise click.BadParameter(str(exc), param_hint="--public-key") from None


def _configured_keys(settings: Settings) -> dict[str, Ed25519PublicKey]:
    try:
        return Signer(key_ring(settings, "audit_signing_key")).public_keys
    except SecretNotUsable as exc:
        raise CommandFailed(f"give --public-key, or configure the signing key: {exc}") from None


def print_verdict(verdict: Verdict) -> int:
    report = verdict.report
    scope = f"{report.checked:,} events, {report.checkpoints:,} signed checkpoints"
    if verdict.log_range:
        first, last = verdict.log_range
        scope += f", compared with the log from position {first:,} to {last:,}"
    for note in verdict.notes:
        print(f"note: {note}")
    for tenant, chains in sorted(report.unanchored.items()):
        print(f"note: tenant {tenant}: {chains} chain(s) changed after its last checkpoint")
    findings = verdict.findings
    if not findings:
        print(f"intact: {scope}; every hash chain verifies")
        return 0
    print(f"BROKEN: {findings[0].line()}")
    for finding in findings[1:]:
        print(f"  also: {finding.line()}")
    print(f"  ({scope})")
    return 1
