"""``relaydesk admin reseal-connectors``: after a ``RELAYDESK_SECRETS_KEY`` rotation, seal every
connector's secrets again under the current key, so the previous key can be removed.

It runs with the connectors service's keys (``RELAYDESK_SECRETS_KEY`` and
``RELAYDESK_SECRETS_PREVIOUS_KEYS``, e.g. ``docker compose exec connectors relaydesk admin
reseal-connectors``), folds the connector configuration from the log exactly as the service
does, and for each connector a previous key sealed sends the service a ``connector.configure``
with the same public fields and its secrets freshly sealed under the current key. The service
(their single writer) decides it like any reconfiguration, so the log records the re-sealed
secrets. It changes nothing for connectors already sealed under the current key, and names
those no configured key opens (their secrets must be entered again).
"""

import sys

from connectors.config import ConnectorDirectory
from contracts import Actor, Envelope
from contracts.commands.connector import ConfigureConnector
from contracts.envelope import ActorKind, LoggedEvent
from relaydesk.archived import archive_of
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.rpc import RpcClient
from relaydesk.keys import SecretNotUsable
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from tools.commands.outcomes import CommandFailed

CLI_ACTOR = Actor(kind=ActorKind.admin, id="cli")


def current_box(settings: Settings) -> SecretBox:
    """The connectors' keys, checked before anything connects: unusable is a configuration
    error (exit 2, one line naming the variable)."""
    try:
        return SecretBox.from_settings(settings)
    except SecretNotUsable as exc:
        raise CommandFailed(f"configuration: {exc}") from None


async def reseal_connectors(bus: Bus, box: SecretBox, settings: Settings) -> int:
    """Re-seal what a previous key sealed; 1 when a connector could not be re-sealed."""
    directory = ConnectorDirectory(box)

    async def fold(batch: list[LoggedEvent]) -> None:
        for event in batch:
            directory.apply(event)

    async with (
        LogReader(bus, start="first", prefetch=2000, name="reseal-connectors") as reader,
        archive_of(settings) as archive,  # connectors older than the stream's retention
    ):
        await catch_up(bus, reader, fold, service="reseal-connectors", archive=archive)
    rpc = RpcClient(bus)
    resealed = current = lost = refused = 0
    for connector in directory.configured():
        name = f"{connector.tenant}/{connector.connector_id}"
        if connector.sealed_with == "current":
            current += 1
            continue
        if connector.sealed_with == "unknown":
            lost += 1
            print(
                f"cannot re-seal {name}: no configured key opens its secrets; add the key that"
                " sealed them to RELAYDESK_SECRETS_PREVIOUS_KEYS, or enter the secrets again",
                file=sys.stderr,
            )
            continue
        command = Envelope(
            type=ConfigureConnector.TYPE,
            tenant=connector.tenant,
            stream=f"connector:{connector.connector_id}",
            actor=CLI_ACTOR,
            data={
                "connector_id": connector.connector_id,
                "platform": connector.platform,
                "public_config": connector.public,
                "sealed_secrets": box.seal(connector.secrets),  # under the current key
            },
        )
        reply = await rpc.command("connectors", command, timeout=settings.request_timeout_s)
        if reply.ok:
            resealed += 1
            print(f"re-sealed {name}")
        else:  # e.g. the service still runs on the previous key as its current one
            refused += 1
            print(f"refused: {name}: {reply.code}: {reply.message}", file=sys.stderr)
    print(
        f"done: {resealed} re-sealed, {current} already under the current key, "
        f"{lost + refused} not re-sealed"
    )
    if lost or refused:
        return 1
    print("every connector is sealed under the current key: the previous keys can be removed")
    return 0
