"""The ``relaydesk`` command line. Run ``relaydesk --help`` for the list of commands."""

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence

from relaydesk.settings import Settings

# service name -> module with ``main(settings, stop)``
SERVICE_MODULES = {
    "gateway": "gateway.main",
    "agent": "agent_service.main",
    "history": "history_service.main",
    "billing": "billing_service.main",
    "connectors": "connectors.main",
}

# extra command name -> "module:function" taking (argv) and returning an exit code.
EXTRA_COMMANDS: dict[str, str] = {
    "bench": "tools.commands.bench:main",
    "replay": "tools.commands.replay:main",
    "audit": "tools.commands.audit:main",
    "admin": "tools.commands.admin:main",
    "export": "tools.commands.export:main",
    "import": "tools.commands.export:import_main",
}


def _load(target: str) -> Callable[[Sequence[str]], int]:
    module_name, _, func = target.partition(":")
    command: Callable[[Sequence[str]], int] = getattr(importlib.import_module(module_name), func)
    return command


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="relaydesk", description="relaydesk live chat: services and tools"
    )
    parser.add_argument(
        "command", choices=["up", *SERVICE_MODULES, *EXTRA_COMMANDS], help="what to run"
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args, _ = parser.parse_known_args(argv[:1])
    command = args.command
    if command == "up":
        from tools.supervisor import up

        return asyncio.run(up(Settings()))
    if command in SERVICE_MODULES:
        from relaydesk.runtime import run_service

        module = importlib.import_module(SERVICE_MODULES[command])
        run_service(command, module.main)
        return 0
    from relaydesk.logging import configure_logging

    # Command-line tools print their results on stdout; their logs go to stderr, warnings only.
    configure_logging(level="WARNING", fmt="console", service=command)
    # No fallback for a module that cannot be imported: the traceback names it (a command's
    # optional extra, e.g. relaydesk[bench], or a broken install).
    return int(_load(EXTRA_COMMANDS[command])(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
