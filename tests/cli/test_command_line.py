"""The ``relaydesk`` command line: help starts nothing, exit codes, one-line errors, completion.

Most tests call ``tools.cli.main(argv)`` in this process (what the ``relaydesk`` script runs),
with the environment the command reads; one runs the real script as a subprocess to show
that ``--help`` of ``up`` and of a service starts no process and opens no connection.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from relaydesk.settings import Settings
from tests.keys import secret_env, test_secrets
from tools.cli import cli, main
from tools.commands import outcomes
from tools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


class Tripwire:
    """A TCP port that only counts who connects to it: every server URL points here, so any
    connection attempt (broker, stream, MongoDB) shows, whatever client made it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.connections += 1
            peer.close()

    def env(self, data_dir: Path) -> dict[str, str]:
        return {
            "RELAYDESK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{self.port}/",
            "RELAYDESK_STREAM_URL": f"rabbitmq-stream://guest:guest@127.0.0.1:{self.port}/",
            "MONGO_URL": f"mongodb://127.0.0.1:{self.port}/",
            "RELAYDESK_DATA_DIR": str(data_dir),
            "RELAYDESK_GATEWAY_PORT": str(free_port()),
            "RELAYDESK_CONNECTORS_PORT": str(free_port()),
            # every secret set and strong: a service would get as far as connecting
            **secret_env(Settings(**test_secrets())),
        }

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(autouse=True)
def worker_logging_untouched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A tool configures structlog for its process (warnings only, loggers cached, its name
    bound): run here, that would stay for every later test of this worker, and structlog's
    capture_logs does not see cached loggers. Only that call is left out; the one-line
    errors do not depend on it (they are printed, not logged)."""
    monkeypatch.setattr(outcomes, "configure_logging", lambda **_: None)
    aiormq = logging.getLogger("aiormq.connection")
    level = aiormq.level
    yield
    aiormq.setLevel(level)


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of the tree, read from Click's own command objects."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


ALL_COMMANDS = [(), *command_paths(cli)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``relaydesk <argv>`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # what Python would make of it as the process's end
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_the_tree_is_what_the_readme_lists() -> None:
    assert len(ALL_COMMANDS) > 20  # the walk found the subcommands, not only the top level
    for name in cli.commands:
        assert f"`relaydesk {name}" in README or f"/ `{name}`" in README, name


@pytest.mark.parametrize("unreadable_setting", [False, True])
def test_every_command_answers_help_and_starts_nothing(
    tripwire: Tripwire,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unreadable_setting: bool,
) -> None:
    """With working settings, starting or connecting anything would reach the tripwire or
    write the data directory; with a setting that cannot be read, reading the settings at all
    would end in exit 2."""
    data_dir = tmp_path / "data"
    for name, value in tripwire.env(data_dir).items():
        monkeypatch.setenv(name, value)
    if unreadable_setting:
        monkeypatch.setenv("RELAYDESK_GATEWAY_PORT", "not-a-port")
    for path in ALL_COMMANDS:
        for flag in ("--help", "-h"):
            code, out, err = run(capsys, *path, flag)
            assert code == 0, (path, err)
            assert out.startswith(f"Usage: {' '.join(('relaydesk', *path))} "), (path, out)
            assert len(out.splitlines()) > 4 and err == "", (path, out, err)
    assert tripwire.connections == 0
    assert not data_dir.exists()


def test_help_of_up_starts_no_process(tripwire: Tripwire, tmp_path: Path) -> None:
    """The real ``relaydesk`` script, for the command that starts the most: ``up --help`` once
    started a whole system (and a service's --help that service: the walk above covers those
    through the same ``main``)."""
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up", "--help"],
        cwd=ROOT,
        env={**os.environ, **tripwire.env(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=60)
    finally:  # if it started something, stop all of it
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0 and out.startswith("Usage: relaydesk up"), err
    assert tripwire.connections == 0
    assert not data_dir.exists()


def test_shell_completion_is_clicks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_RELAYDESK_COMPLETE", "bash_source")
    code, script, _ = run(capsys)
    assert code == 0 and "_RELAYDESK_COMPLETE=bash_complete" in script
    monkeypatch.setenv("_RELAYDESK_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "relaydesk admin list")
    monkeypatch.setenv("COMP_CWORD", "2")
    code, offered, _ = run(capsys)
    assert code == 0 and offered.split() == ["plain,list-agents"]


def unreachable(monkeypatch: pytest.MonkeyPatch) -> int:
    """Broker and store URLs at a port nobody listens on, with a password in them."""
    port = free_port()
    monkeypatch.setenv("RELAYDESK_AMQP_URL", f"amqp://guest:hunter2secret@127.0.0.1:{port}/")
    monkeypatch.setenv("MONGO_URL", f"mongodb://app:hunter2secret@127.0.0.1:{port}/")
    monkeypatch.delenv("RELAYDESK_STREAM_URL", raising=False)
    return port


@pytest.mark.parametrize(
    "argv",
    [
        ("admin", "list-agents", "--tenant", "acme"),
        ("admin", "create-tenant", "--tenant", "acme", "--name", "Acme"),
        ("replay", "--source", "stream"),
        ("import", "--input", str(ROOT / "tests" / "cli" / "one_event.jsonl")),
    ],
)
def test_an_unreachable_broker_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    port = unreachable(monkeypatch)
    code, out, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2 and out == "", (code, err)
    where = " ".join(("relaydesk", *argv[: 2 if argv[0] == "admin" else 1]))
    assert line == (
        f"{where}: cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:{port}/ (connection refused)"
    )


def test_an_unreachable_archive_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """(One archive command: the store's client waits its 3 s server selection timeout.)"""
    port = unreachable(monkeypatch)
    output = tmp_path / "acme.jsonl"
    code, out, err = run(capsys, "export", "--tenant", "acme", "--output", str(output))
    assert code == 2 and out == ""
    assert one_line(err) == (
        f"relaydesk export: cannot reach MongoDB at mongodb://app:***@127.0.0.1:{port}/"
        " (connection refused)"
    )
    assert not output.exists()  # no empty export left to mistake for a real one


@pytest.mark.parametrize(
    "argv", [("replay", "--tenant", "acme"), ("export", "--tenant", "acme"), ("audit", "verify")]
)
def test_the_archive_commands_without_a_store_say_so_alike(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    monkeypatch.delenv("MONGO_URL", raising=False)
    monkeypatch.delenv("RELAYDESK_MONGO_URL", raising=False)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    where = " ".join(("relaydesk", *argv[: 2 if argv[0] == "audit" else 1]))
    assert one_line(err).startswith(f"{where}: configuration: MONGO_URL: not set")


@pytest.mark.parametrize(
    "argv",
    [
        ("admin", "list-agents", "--tenant", "acme"),
        ("replay", "--source", "stream"),
        ("history",),
        ("up",),
    ],
)
def test_a_setting_that_cannot_be_read_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    unreachable(monkeypatch)
    monkeypatch.setenv("RELAYDESK_GATEWAY_PORT", "eighty")
    monkeypatch.setenv("RELAYDESK_TRUSTED_PROXIES", "10.0.0.0/99")
    code, out, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2 and out == ""
    where = " ".join(("relaydesk", *argv[: 2 if argv[0] == "admin" else 1]))
    assert line.startswith(f"{where}: configuration: RELAYDESK_GATEWAY_PORT: "), line
    assert "RELAYDESK_TRUSTED_PROXIES: " in line and "cannot reach" not in line


@pytest.mark.parametrize("argv", [("up",), ("gateway",), ("history",), ("audit", "verify")])
def test_an_unknown_log_level_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """RELAYDESK_LOG_LEVEL=LOUD was read as it was, and `up` and every service ended in a
    KeyError 'level loud' traceback configuring their logs."""
    unreachable(monkeypatch)
    for name, value in secret_env(Settings(**test_secrets())).items():  # not what stops them
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RELAYDESK_LOG_LEVEL", "LOUD")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    where = " ".join(("relaydesk", *argv))
    assert one_line(err) == (
        f"{where}: configuration: RELAYDESK_LOG_LEVEL: Input should be 'DEBUG', 'INFO',"
        " 'WARNING', 'ERROR' or 'CRITICAL'"
    )


def test_reseal_without_its_key_is_a_configuration_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable(monkeypatch)
    monkeypatch.delenv("RELAYDESK_SECRETS_KEY", raising=False)
    code, _, err = run(capsys, "admin", "reseal-connectors")
    line = one_line(err)
    assert code == 2 and line.startswith(
        "relaydesk admin reseal-connectors: configuration: RELAYDESK_SECRETS_KEY is not set"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("admin", "list-agents"), "relaydesk admin list-agents: Missing option '--tenant'."),
        (("nonsense",), "relaydesk: No such command 'nonsense'."),
        (("up", "--verbose"), "relaydesk up: No such option '--verbose'."),
        (("replay", "--since", "yesterday"), "relaydesk replay: Invalid value for '--since'"),
        (
            ("replay", "--tenant", "acme", "--what-if", "max_chat=1"),
            "relaydesk replay: --what-if: unknown key 'max_chat': the keys are routing_mode,",
        ),
        (
            ("replay", "--tenant", "acme", "--what-if", "offer_timeout_s=1"),
            "relaydesk replay: --what-if: offer_timeout_s: Input should be greater than or equal",
        ),
        (("replay", "--what-if", "max_chats_default=1"), "relaydesk replay: --what-if replays one"),
        (("audit", "verify", "--conversation", "c1"), "relaydesk audit verify: --conversation"),
        (("import", "--input", "/nonexistent.jsonl"), "relaydesk import: Invalid value for"),
        (("bench", "--rates", "fast"), "relaydesk bench: Invalid value for '--rates'"),
        (
            ("bench", "--sustained-start", "10"),
            "relaydesk bench: Invalid value for '--sustained-start': 10.0 is not in the range",
        ),
        (
            (
                "admin",
                "create-agent",
                "--tenant",
                "a",
                "--email",
                "e",
                "--name",
                "n",
                "--password",
                "short",
            ),
            "relaydesk admin create-agent: refused: invalid_payload: ",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and one_line(err).startswith(says), err


@pytest.mark.parametrize("argv", [(), ("admin",), ("audit",)])
def test_a_group_alone_shows_its_commands_as_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith(f"Usage: {' '.join(('relaydesk', *argv))}")
    assert "Commands:" in err and "Traceback" not in err


def test_a_bad_import_file_publishes_nothing_and_says_which_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable(monkeypatch)  # read and refused before any connection
    bad = tmp_path / "bad.jsonl"
    good = (ROOT / "tests" / "cli" / "one_event.jsonl").read_text()
    bad.write_text(good + '{"type": "nonsense"}\n')
    code, _, err = run(capsys, "import", "--input", str(bad))
    assert code == 2 and one_line(err).startswith("relaydesk import: nothing imported: line 2: ")
