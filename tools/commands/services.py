"""``relaydesk up`` and one command per service (``relaydesk gateway``, ``agent``, …).

A service's module is imported only when the command runs: ``--help`` starts nothing, reads
no setting and connects to nothing.
"""

import asyncio
import importlib

import click

from relaydesk.settings import Settings
from tools.commands.outcomes import settings_of

# service name -> (module with ``main(settings, stop)``, what it serves)
SERVICE_MODULES: dict[str, tuple[str, str]] = {
    "gateway": ("gateway.main", "HTTP API, websockets, the pages"),
    "agent": ("agent_service.main", "routing and administration"),
    "history": ("history_service.main", "the archive and read models"),
    "billing": ("billing_service.main", "ledger, period close, invoices"),
    "connectors": ("connectors.main", "Telegram, Messenger and WeChat"),
}

_SERVICE_EPILOG = (
    "Runs until SIGINT or SIGTERM. Exit 2 with one line when a setting or a secret it needs"
    " is missing or unusable (README, Configuration)."
)


def _service(name: str, module_name: str, summary: str) -> click.Command:
    @click.pass_context
    def run(ctx: click.Context) -> int:
        from relaydesk.runtime import run_service  # the event loop and signals: only to run

        given = ctx.obj if isinstance(ctx.obj, Settings) else None
        run_service(name, importlib.import_module(module_name).main, given)
        return 0

    return click.Command(
        name,
        callback=run,
        short_help=f"run the {name} service: {summary}",
        help=f"Run the {name} service: {summary}.\n\n{_SERVICE_EPILOG}",
    )


SERVICES = [_service(name, module, summary) for name, (module, summary) in SERVICE_MODULES.items()]


@click.command(short_help="the whole system on one machine")
@click.pass_context
def up(ctx: click.Context) -> int:
    """The whole system on one machine: RabbitMQ (started if needed), an embedded MongoDB-
    protocol server when MONGO_URL is unset, and every service as its own process.

    Generates the secrets on its first start into RELAYDESK_DATA_DIR; Ctrl-C stops everything.
    """
    from tools.supervisor import up as run_up  # starts processes: only when asked to

    return asyncio.run(run_up(settings_of(ctx)))
