"""Every line a process writes is one structured event, libraries' own logs included.

aiormq, aio-pika, uvicorn and pymongo log through the standard library; left alone those
lines came out as plain text, a traceback over many lines, in the middle of the JSON
stream (during a broker outage: aiormq's "Unexpected connection close", aio-pika's
reconnect tracebacks), which a log pipeline reading JSON lines cannot parse.

The process is one of its own: logging is configured once per process, and loggers keep
the stream they were first used with.
"""

import json
import subprocess
import sys

PROCESS = """
import logging, structlog
from relaydesk.logging import configure_logging
configure_logging(level="INFO", fmt="json", service="gateway")
try:
    raise ConnectionResetError("peer went away")
except ConnectionResetError:
    logging.getLogger("aiormq.connection").exception("Unexpected connection close")
logging.getLogger("aio_pika.robust_connection").warning("Reconnecting after %s s", 1)
logging.getLogger("pymongo.topology").debug("below the level: not written")
# httpx logs each request's URL at INFO, and a Telegram URL holds the bot's token
logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot1:tok/x")
structlog.get_logger().info("own_event", token="t0p-secret")
"""


def test_library_logs_are_json_lines_with_their_logger_and_one_line_tracebacks() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", PROCESS], capture_output=True, text=True, timeout=60, check=True
    )
    events = [json.loads(line) for line in ran.stderr.splitlines()]  # every line parses
    assert [e["event"] for e in events] == [
        "Unexpected connection close",
        "Reconnecting after 1 s",
        "own_event",
    ]
    assert events[0]["logger"] == "aiormq.connection" and events[0]["level"] == "error"
    assert "ConnectionResetError: peer went away" in events[0]["exception"]
    assert all(e["service"] == "gateway" for e in events)
    assert events[2]["token"] == "[redacted]"
