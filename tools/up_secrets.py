"""The secrets of ``relaydesk up``: generated on first start, kept in the data directory.

A single-machine install should work without anyone choosing a key, yet never on a key that
ships with the code. So ``relaydesk up`` generates each secret the environment does not set
(48 random url-safe characters), stores it in ``<data_dir>/secrets.json`` (directory 0700, file
0600, written whole then renamed: never half-written) and reuses it on every later start, so
sessions and sealed connector secrets survive a restart. A variable set in the environment
wins over the file. The file may also hold the previous keys (``*_PREVIOUS_*``) for rotation
(docs/security.md).
"""

import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from relaydesk.keys import PREVIOUS, variable

FILE_NAME = "secrets.json"
# generated when missing
GENERATED = tuple(variable(name) for name in PREVIOUS)
# read from the file when present (a rotation's previous keys), never generated
KNOWN = frozenset({*GENERATED, *(variable(previous) for previous in PREVIOUS.values())})


class SecretsFileError(Exception):
    """The secrets file cannot be read or written; the message says which and why."""


def secrets_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE_NAME


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def _read(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SecretsFileError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(stored, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in stored.items()
    ):
        raise SecretsFileError(f"{path}: not a JSON object of strings")
    unknown = set(stored) - KNOWN
    if unknown:
        raise SecretsFileError(f"{path}: unknown entries {', '.join(sorted(unknown))}")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)  # someone loosened it: only the owner may read the keys
    return stored


def _write(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    # O_EXCL and mode 0600 at creation: the keys are never readable by anyone else, not even
    # for the moment between creating and chmod-ing the file.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(values, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def up_secrets(data_dir: str | Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The secret variables to give the services that ``environ`` does not set already.

    Generates (and stores) each secret neither ``environ`` nor the file holds; raises
    :class:`SecretsFileError` when the file is unreadable or malformed.
    """
    path = secrets_path(data_dir)
    stored = _read(path)
    missing = [name for name in GENERATED if not environ.get(name) and not stored.get(name)]
    if missing:
        stored = {**stored, **{name: new_secret() for name in missing}}
        try:
            _write(path, stored)
        except OSError as exc:
            raise SecretsFileError(f"{path}: cannot be written ({exc.strerror})") from None
    return {name: value for name, value in stored.items() if value and not environ.get(name)}
