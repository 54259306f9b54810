"""docs/protocol.md is complete and agrees with the code a client talks to.

Fails when the gateway dispatches an op without its section, when an event type of the
registry has no row in "Who receives which event" (or its row disagrees with the type's
audience declaration), when an HTTP route has no section with its status and body, or when
the close codes and limits differ from what the gateway does.
"""

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from contracts.audience import Audience
from contracts.registry import EVENTS
from gateway import sessions, ws
from gateway.app import ROUTER_BUILDERS
from gateway.directory import ConversationDirectory
from gateway.ops import Operations
from relaydesk.settings import Settings
from tests.keys import test_secrets

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text()
BACKTICKED = re.compile(r"`([^`]+)`")
# The audience columns of the events table, in order after the type.
COLUMNS = (
    Audience.VISITOR,
    Audience.CONVERSATION_AGENTS,
    Audience.NAMED_AGENTS,
    Audience.SUPERVISORS,
    Audience.TENANT_AGENTS,
)


def section(heading: str, text: str = DOC) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of its level
    or above; empty when the heading is missing."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    if heading not in lines:
        return ""
    body = []
    for line in lines[lines.index(heading) + 1 :]:
        marks = len(line) - len(line.lstrip("#"))
        if 0 < marks <= level and line[marks : marks + 1] == " ":
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ]


# --- ops ---------------------------------------------------------------------------

OPS = Operations(None, None, ConversationDirectory(), request_timeout_s=1).table  # type: ignore[arg-type]
OPS_DOC = section("## Frames from the client: ops")


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_its_section_with_who_request_and_ack(op: str) -> None:
    text = section(f"### `{op}`", OPS_DOC)
    assert text, f"docs/protocol.md has no section ### `{op}`"
    who = next((line for line in text.splitlines() if line.startswith("Who:")), "")
    assert ("customer" in who) == (OPS[op] in ("customer", "any")), (op, who, OPS[op])
    assert ("agent" in who) == (OPS[op] in ("agent", "any")), (op, who, OPS[op])
    for part in ("- Request:", "- Ack:"):
        assert part in text, f"`{op}`: no {part!r} line"


def test_the_doc_documents_no_op_the_gateway_does_not_have() -> None:
    documented = {m.group(1) for m in re.finditer(r"^### `(\w+)`$", OPS_DOC, re.MULTILINE)}
    assert documented == {*OPS, "ping"}
    assert 'frame.get("op") == "ping"' in Path(ws.__file__).read_text()


def _op_error_codes(path: Path) -> set[str]:
    """The codes of every ``OpError("<code>", …)`` the module raises."""
    return {
        node.args[0].value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "OpError"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_every_error_code_the_gateway_answers_is_documented() -> None:
    gateway = ROOT / "gateway"
    codes = _op_error_codes(gateway / "ops.py") | _op_error_codes(gateway / "ws.py")
    codes |= {"rate_limited", "internal"}  # sent by ws.py as plain frames
    assert codes >= {"bad_frame", "forbidden", "not_found", "unavailable"}  # the scan works
    missing = {code for code in codes if f"`{code}`" not in OPS_DOC}
    assert not missing, f"error codes missing from docs/protocol.md: {sorted(missing)}"


# --- who receives which event -------------------------------------------------------

AUDIENCE_DOC = section("## Who receives which event")


def documented_audiences() -> dict[str, tuple[set[Audience], set[str], dict[Audience, set[str]]]]:
    """type → (audiences, named-agent fields, withheld fields per audience) from the table."""
    found = {}
    for cells in table_rows(AUDIENCE_DOC)[1:]:
        type_name = cells[0].strip("`")
        audiences: set[Audience] = set()
        named: set[str] = set()
        withheld: dict[Audience, set[str]] = {}
        for audience, cell in zip(COLUMNS, cells[1:6], strict=True):
            if not cell:
                continue
            audiences.add(audience)
            if audience is Audience.NAMED_AGENTS:
                named = set(BACKTICKED.findall(cell))
            elif "without" in cell:
                withheld[audience] = set(BACKTICKED.findall(cell.split("without", 1)[1]))
        found[type_name] = (audiences, named, withheld)
    return found


def never_sent() -> set[str]:
    paragraph = AUDIENCE_DOC.split("Never sent to any socket", 1)[1].split("\n\n", 1)[0]
    return set(BACKTICKED.findall(paragraph))


def test_every_event_type_has_exactly_one_place_in_the_audience_section() -> None:
    rows, never = set(documented_audiences()), never_sent()
    assert not rows & never, f"both in the table and never sent: {sorted(rows & never)}"
    missing = set(EVENTS.names()) - rows - never
    assert not missing, f"event types without a documented audience: {sorted(missing)}"
    unknown = (rows | never) - set(EVENTS.names())
    assert not unknown, f"documented types the registry does not have: {sorted(unknown)}"


@pytest.mark.parametrize("type_name", EVENTS.names())
def test_the_documented_audience_is_the_declared_one(type_name: str) -> None:
    declared = EVENTS.audience(type_name)
    if type_name in never_sent():
        assert not declared, f"{type_name} is documented as never sent but declares {declared}"
        return
    audiences, named, withheld = documented_audiences()[type_name]
    assert audiences == set(declared), type_name
    assert named == set(EVENTS.named_agent_fields(type_name)), type_name
    assert withheld == {a: set(f) for a, f in EVENTS.withheld_from(type_name).items()}, type_name


# --- limits and close codes ---------------------------------------------------------

LIMITS_DOC = section("## Limits and close codes")


def test_close_codes_are_those_the_gateway_sends() -> None:
    sent = {value for name, value in vars(sessions).items() if name.startswith("CLOSE_")}
    sent |= {1000, 1009}  # a normal close; uvicorn's answer to a frame over ws_max_size
    documented = {int(cells[0]) for cells in table_rows(LIMITS_DOC) if cells[0].isdigit()}
    assert documented == sent


def test_limits_state_the_defaults() -> None:
    defaults = Settings.model_fields
    rows = {
        "RELAYDESK_WS_MAX_FRAME_BYTES": [defaults["ws_max_frame_bytes"].default],
        "RELAYDESK_WS_RATE_PER_S": [
            defaults["ws_rate_per_s"].default,
            defaults["ws_rate_burst"].default,
        ],
        "RELAYDESK_WS_TYPING_RATE_PER_S": [
            defaults["ws_typing_rate_per_s"].default,
            defaults["ws_typing_burst"].default,
        ],
        "RELAYDESK_WS_QUEUE_LIMIT": [defaults["ws_queue_limit"].default],
        "RELAYDESK_RESUME_BUFFER_EVENTS": [defaults["resume_buffer_events"].default],
        "RATE_VIOLATIONS_BEFORE_CLOSE": [ws.RATE_VIOLATIONS_BEFORE_CLOSE],
    }
    for name, values in rows.items():
        [row] = [line for line in LIMITS_DOC.splitlines() if name in line]
        for value in values:
            shown = str(int(value)) if float(value).is_integer() else str(value)
            assert re.search(rf"\b{re.escape(shown)}\b", row), (name, shown, row)


# --- HTTP routes --------------------------------------------------------------------


def routes() -> list[tuple[str, str, int, bool]]:
    """(method, path, success status, takes a body) of every route the gateway serves."""
    deps = SimpleNamespace(settings=Settings(**test_secrets()))  # routers hold their keys
    found = []
    for build_router in ROUTER_BUILDERS:
        for route in build_router(deps).routes:  # type: ignore[arg-type]
            for method in sorted(route.methods):  # type: ignore[attr-defined]
                found.append(
                    (
                        method,
                        route.path,  # type: ignore[attr-defined]
                        route.status_code or 200,  # type: ignore[attr-defined]
                        # A body FastAPI parses, or one the route reads itself after its
                        # checks and declares for OpenAPI (the upload: docs/security.md).
                        route.body_field is not None  # type: ignore[attr-defined]
                        or "requestBody" in (route.openapi_extra or {}),  # type: ignore[attr-defined]
                    )
                )
    return found


@pytest.mark.parametrize(("method", "path", "status", "has_body"), routes())
def test_every_http_route_has_its_section_with_status_and_body(
    method: str, path: str, status: int, has_body: bool
) -> None:
    text = section(f"#### `{method} {path}`")
    assert text, f"docs/protocol.md has no section #### `{method} {path}`"
    assert f"{status}: " in text, f"{method} {path}: the {status} answer is not documented"
    assert ("Body:" in text) == has_body, f"{method} {path}: request body documented wrongly"


def test_the_doc_documents_no_route_the_gateway_does_not_have() -> None:
    served = {f"{method} {path}" for method, path, _, _ in routes()}
    documented = set(re.findall(r"^#### `([A-Z]+ /\S+)`$", DOC, re.MULTILINE))
    assert documented == served
