"""Generate the JSON Schemas of every event and command into docs/schemas/.

Run ``python -m contracts.schemas`` after changing a model; a test fails when the
checked-in schemas are stale.
"""

import json
import sys
from pathlib import Path

from contracts.envelope import Envelope
from contracts.registry import COMMANDS, EVENTS

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def render() -> dict[str, str]:
    """File name → JSON text for the envelope, the events and the commands."""
    files = {
        "envelope.json": Envelope.model_json_schema(),
        "events.json": EVENTS.json_schemas(),
        "commands.json": COMMANDS.json_schemas(),
    }
    return {
        name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in files.items()
    }


def write(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(path)
