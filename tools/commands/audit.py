"""``relaydesk audit``: tamper evidence for the event archive.

    relaydesk audit verify                              # every chain, the checkpoints, the log
    relaydesk audit verify --tenant acme [--conversation c123]
    relaydesk audit verify --file acme.jsonl --public-key ed25519:…   # offline, an export
    relaydesk audit public-key                          # the checkpoints' public keys

Exit code 0: intact; 1: a problem found (each printed, the first bad position first);
2: usage, configuration or connection error.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaydesk.keys import SecretNotUsable, key_ring
from relaydesk.settings import Settings
from relaydesk.signing import BadPublicKey, Signer, keys_by_id, parse_public_key, public_text
from tools.replay.export_file import read_export
from tools.replay.verify import Verdict, verify_file, verify_online


class UsageError(Exception):
    """Exit 2 with this message."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk audit", description="tamper evidence for the event archive"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser(
        "verify", help="hash chains, signed checkpoints and the log (or an export file)"
    )
    verify.add_argument("--tenant")
    verify.add_argument("--conversation", help="needs --tenant")
    verify.add_argument("--file", type=Path, help="an export to verify offline")
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="ed25519:… (repeatable); default: derived from RELAYDESK_AUDIT_SIGNING_KEY",
    )
    verify.add_argument(
        "--no-log", action="store_true", help="check the archive against its checkpoints only"
    )
    sub.add_parser("public-key", help="print the public keys the checkpoints are signed with")
    return parser


def public_keys(texts: list[str], settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The keys given, or those of the configured signing key ring."""
    try:
        if texts:
            return keys_by_id(parse_public_key(text) for text in texts)
    except BadPublicKey as exc:
        raise UsageError(f"--public-key: {exc}") from None
    try:
        return Signer(key_ring(settings, "audit_signing_key")).public_keys
    except SecretNotUsable as exc:
        raise UsageError(f"give --public-key, or configure the signing key: {exc}") from None


def print_verdict(verdict: Verdict) -> int:
    report = verdict.report
    scope = f"{report.checked:,} events, {report.checkpoints:,} signed checkpoints"
    if verdict.log_range:
        first, last = verdict.log_range
        scope += f", compared with the log from position {first:,} to {last:,}"
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


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    keys = public_keys(args.public_key, settings)
    if args.file:
        try:
            export = read_export(args.file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.file}: {exc}") from None
        if not export.verifiable:
            raise UsageError(f"{args.file}: an export of the first format has no hash links")
        return print_verdict(verify_file(export, keys))
    if not settings.mongo_url:
        raise UsageError("set MONGO_URL to the archive's MongoDB (relaydesk up prints it)")

    def progress(checked: int) -> None:
        sys.stderr.write(f"\r[audit] {checked:,} events checked")
        sys.stderr.flush()

    verdict = asyncio.run(
        verify_online(
            settings,
            args.tenant,
            args.conversation,
            keys,
            with_log=not args.no_log,
            on_progress=progress,
        )
    )
    sys.stderr.write("\n")
    return print_verdict(verdict)


def _public_key(settings: Settings) -> int:
    try:
        ring = key_ring(settings, "audit_signing_key")
    except SecretNotUsable as exc:
        raise UsageError(str(exc)) from None
    signer = Signer(ring)
    for key_id, key in signer.public_keys.items():
        label = "current" if key_id == signer.key_id else "previous"
        print(f"{public_text(key)}  key id {key_id} ({label})")
    return 0


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _parser().parse_args(list(argv))
    settings = settings or Settings()
    try:
        if args.action == "public-key":
            return _public_key(settings)
        if args.conversation and not args.tenant and not args.file:
            raise UsageError("--conversation needs --tenant")
        return _verify(args, settings)
    except UsageError as exc:
        print(f"relaydesk audit: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a CLI reports any connection problem plainly
        print(f"relaydesk audit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
