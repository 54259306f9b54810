"""The ``relaydesk`` command line, on Click. ``relaydesk --help`` lists the commands.

Every command and subcommand answers ``--help`` without reading a setting, connecting to
anything or starting anything: Click handles ``--help`` while parsing, before a command's
callback runs, and the callbacks are the only place settings are read and servers reached
(the group callbacks do nothing). Shell completion is Click's (``_RELAYDESK_COMPLETE``,
README "Commands").

Exit codes (tools/commands/outcomes.py, README "Exit codes"): 0 ok; 1 a check found a
problem; 2 usage, configuration or an unreachable dependency, as one line on stderr.
"""

import os
import sys
from collections.abc import Sequence
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

from relaydesk.settings import Settings
from tools.commands.admin import admin
from tools.commands.audit import audit
from tools.commands.bench import bench
from tools.commands.export import export, import_
from tools.commands.outcomes import CommandFailed
from tools.commands.replay import replay
from tools.commands.services import SERVICE_MODULES, SERVICES, up

__all__ = ["SERVICE_MODULES", "cli", "main"]  # the service names: tests hold compose to them

PROG = "relaydesk"
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class RelaydeskGroup(click.Group):
    """Click's group, ending every run the same way: the command's own exit code (callbacks
    return it), or one line on stderr and its code for a usage error or a failure."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        code = self._run(args, prog_name or PROG, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any
    ) -> int:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # `relaydesk` or `relaydesk admin` alone: the help
            print(exc.format_message(), file=sys.stderr)
            return exc.exit_code
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else prog_name
            print(
                f"{where}: {exc.format_message()} (see `{where} --help`)",
                file=sys.stderr,
            )
            return exc.exit_code
        except CommandFailed as exc:
            print(f"{exc.where or prog_name}: {exc.format_message()}", file=sys.stderr)
            return exc.exit_code
        except click.ClickException as exc:  # e.g. a file Click could not open
            print(f"{prog_name}: {exc.format_message()}", file=sys.stderr)
            return exc.exit_code
        except click.Abort:
            print(f"{prog_name}: aborted", file=sys.stderr)
            return INTERRUPTED
        except BrokenPipeError:  # `relaydesk replay | head`: the reader has what it wanted
            # (stdout goes to /dev/null so the interpreter's last flush does not fail again)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return int(result or 0)


@click.group(
    cls=RelaydeskGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def cli() -> None:
    """relaydesk live chat: the services and the tools around them.

    Settings come from the environment (RELAYDESK_*, MONGO_URL; README, Configuration).
    Exit codes: 0 ok; 1 a check found a problem; 2 usage, configuration or an unreachable
    dependency (one line on stderr).
    """


for command in (up, *SERVICES, admin, replay, audit, export, import_, bench):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run the command line; returns its exit code. ``settings``: given in-process (tests)
    instead of read from the environment."""
    return cli.main(args=argv, prog_name=PROG, obj=settings, standalone_mode=False)


if __name__ == "__main__":
    raise SystemExit(main())
