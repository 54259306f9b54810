"""Fuzzing: the websocket protocol (hypothesis) and the HTTP API (schemathesis, from the OpenAPI).

Every input must get a clear, documented answer, and the system must keep serving. Both fuzz
one system (the module's: a system start less), each in a tenant of its own.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest_asyncio
import websockets
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.admin.helpers import owner_session
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem

STABLE_CODES = {
    "bad_frame",
    "unknown_op",
    "invalid_payload",
    "forbidden",
    "not_found",
    "rate_limited",
    "too_large",
    "already_assigned",
    "not_offered",
    "conversation_closed",
    "no_capacity",
    "unavailable",
    "internal",
    "not_assigned",
    "transfer_pending",
    "not_closed",
    "already_rated",
}
OPS = [
    "start",
    "send",
    "typing",
    "read",
    "close",
    "rate",
    "status",
    "accept",
    "decline",
    "transfer",
    "ping",
    "nonsense",
    "",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FRAMES = st.one_of(
    st.fixed_dictionaries(
        {"op": st.sampled_from(OPS), "id": st.text(max_size=80)},
        optional={
            "conversation_id": st.one_of(st.text(max_size=40), JSON_VALUES, st.just({"$ne": None})),
            "body": JSON_VALUES,
            "score": JSON_VALUES,
            "status": JSON_VALUES,
            "visitor": JSON_VALUES,
            "typing": JSON_VALUES,
            "to_agent_id": JSON_VALUES,
        },
    ),
    JSON_VALUES,
)


def generated_frames(count: int) -> list[str]:
    """Frames from hypothesis: structured commands with hostile fields, raw JSON, and raw text."""
    found: list[str] = []

    @hypothesis_settings(
        max_examples=count,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(
        st.one_of(
            FRAMES.map(
                lambda v: (
                    orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
                    if _encodable(v)
                    else "null"
                )
            ),
            st.text(max_size=60),
        )
    )
    def collect(frame: str) -> None:
        found.append(frame)

    collect()
    return found


def _encodable(value: object) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return True
    except (TypeError, orjson.JSONEncodeError):
        return False


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[RunningSystem]:
    """One system for both fuzzers; its socket rate limit generous enough for 250 frames sent
    back to back (the limit itself is tested in tests/gateway)."""
    async with shared_system(
        vhosts, mongo_server, ws_rate_per_s=100_000.0, ws_rate_burst=100_000
    ) as running:
        yield running


async def test_fuzzed_websocket_frames_each_get_a_documented_answer_and_the_socket_keeps_serving(
    system: RunningSystem,
) -> None:
    frames = generated_frames(250)
    for token, origin in (
        (system.visitor_token("fuzzws", "v1"), "https://shop.example"),
        (system.agent_token("fuzzws", "a1", role="owner"), system.gateway.base_url),
    ):
        async with websockets.connect(
            f"{system.gateway.ws_url}?token={token}", origin=origin
        ) as socket:
            assert orjson.loads(await socket.recv())["t"] == "hello"
            for frame in frames:
                await socket.send(frame)
                while True:  # events may interleave; wait for this frame's answer
                    answer = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
                    if answer["t"] in ("ack", "error", "pong"):
                        break
                assert answer["t"] != "error" or answer["code"] in STABLE_CODES, (frame, answer)
                assert answer["t"] != "error" or answer["code"] != "internal", (frame, answer)
            await socket.send(orjson.dumps({"op": "ping", "id": "still-there"}).decode())
            assert orjson.loads(await asyncio.wait_for(socket.recv(), 10)) == {
                "t": "pong",
                "id": "still-there",
            }


async def test_fuzzed_http_api_never_answers_with_a_server_error(system: RunningSystem) -> None:
    schemathesis = shutil.which("st", path=os.path.dirname(sys.executable))
    assert schemathesis, "schemathesis is a test dependency (pip install -e .[test])"
    async with httpx.AsyncClient(base_url=system.gateway.base_url, timeout=20) as http:
        owner = await owner_session(system, http, "fuzz")
        schema = (await http.get("/openapi.json")).json()
        assert {
            "/api/auth/login",
            "/api/conversations",
            "/api/billing/account",
            "/api/reports/summary",
        } <= set(schema["paths"])
        command = [
            schemathesis,
            "run",
            f"{system.gateway.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "8",
            "--phases",
            "examples,fuzzing",
            "--seed",
            os.environ.get("RELAYDESK_FUZZ_SEED", "20261124"),
            "--header",
            f"Authorization:{owner['Authorization']}",
            "--request-timeout",
            "15",
            "--exclude-path-regex",
            "^/api/admin/connectors",  # the connectors service is not part of this system
        ]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=600
        )
        failures = (
            done.stdout[done.stdout.find("FAILURES") :]
            if "FAILURES" in done.stdout
            else done.stdout
        )
        assert done.returncode == 0, failures[:6000]
        assert (await http.get("/healthz")).json()["status"] == "alive"
        assert (
            await http.get("/api/conversations", params={"view": "all"}, headers=owner)
        ).status_code == 200
        json.dumps(schema)  # the OpenAPI document itself is valid JSON all the way down
