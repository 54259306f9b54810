"""Every Prometheus metric relaydesk exports, in one place (docs/observability.md).

The metrics live on prometheus_client's default registry; each service's health server
serves them as ``/metrics`` (``prometheus_client.generate_latest``). Names start with
``relaydesk_``; a duration is in seconds, a counter ends in ``_total``.

No metric has a tenant label, a conversation, an agent or a subscription id: every label
takes one of a few values fixed by the code (a service, a command or query name, an event
type, a channel, an outcome). A label per tenant would grow the series without bound with
the number of customers and make Prometheus the first thing to fall over; per-tenant
numbers are reports (history_service/reports.py), not metrics.
"""

from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)
_SERIES: dict[tuple[int, tuple[str, ...]], Any] = {}


def series(metric: M, *labels: str) -> M:
    """``metric.labels(*labels)``, looked up once: prometheus_client's ``labels()`` validates,
    takes a lock and builds its key at every call, several µs on a path taken per message.
    Labels take a few fixed values each (above), so what is remembered stays small."""
    key = (id(metric), labels)
    child = _SERIES.get(key)
    if child is None:
        child = _SERIES[key] = metric.labels(*labels)
    return child


# Round trips on a broker and a database: from a millisecond to the 5 s deadlines.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# --- the log ---------------------------------------------------------------------------

LOG_READER_POSITION = Gauge(
    "relaydesk_log_reader_position",
    "Position of the last log entry a reader handed to its service.",
    ["service", "reader"],
)
LOG_READER_LAG_SECONDS = Gauge(
    "relaydesk_log_reader_lag_seconds",
    "How long after it occurred the last event was handed to the reader's service.",
    ["service", "reader"],
)
LOG_READER_BUFFERED = Gauge(
    "relaydesk_log_reader_buffered_entries",
    "Entries received from the broker that the reader's service has not taken yet.",
    ["service", "reader"],
)
LOG_ENTRIES_EXPIRED = Counter(
    "relaydesk_log_entries_expired_total",
    "Log positions a reader came to after the stream's retention had deleted them.",
    ["service", "reader"],
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "relaydesk_publish_confirm_seconds",
    "From appending a batch of events to the log until the broker confirmed all of them.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "relaydesk_events_published_total",
    "Events appended to the log and confirmed by the broker.",
    ["service"],
)
PUBLISH_FAILURES = Counter(
    "relaydesk_publish_failures_total",
    "Appends that failed (not confirmed within the publish timeout, or refused).",
    ["service"],
)

# --- commands and queries ----------------------------------------------------------------

REQUEST_SECONDS = Histogram(
    "relaydesk_request_seconds",
    "A command or query from sending it until its reply arrived (the caller's view).",
    ["kind", "target", "name"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "relaydesk_requests_total",
    "Commands and queries sent, by outcome: ok, rejected (a command's no), error (a query "
    "answered with an error) or timeout.",
    ["kind", "target", "name", "outcome"],
)
COMMAND_DECIDE_SECONDS = Histogram(
    "relaydesk_command_decide_seconds",
    "Deciding one command in its owning service: prepare, decide, publish, fold.",
    ["service", "command"],
    buckets=LATENCY_BUCKETS,
)
COMMANDS_DECIDED = Counter(
    "relaydesk_commands_decided_total",
    "Commands decided, by outcome: accepted, rejected, or redelivered (answered from record).",
    ["service", "command", "outcome"],
)
QUERY_ANSWER_SECONDS = Histogram(
    "relaydesk_query_answer_seconds",
    "Answering one query in the service that owns it.",
    ["service", "query"],
    buckets=LATENCY_BUCKETS,
)

# --- conversations -------------------------------------------------------------------------

ROUTING_DECISIONS = Counter(
    "relaydesk_routing_decisions_total",
    "Routing events published by the agent service: offered, offer_declined, accepted, "
    "transferred, offer_withdrawn, queued, missed.",
    ["decision"],
)
MESSAGES = Counter(
    "relaydesk_messages_total",
    "Chat messages (text and attachments) put on the log, by the conversation's channel "
    "(web, telegram, messenger, wechat) and direction: in from customers, out from agents.",
    ["channel", "direction"],
)

# --- the gateway -------------------------------------------------------------------------

WEBSOCKET_CONNECTIONS = Gauge(
    "relaydesk_websocket_connections",
    "Open websocket sessions on this gateway, by kind (agent, customer).",
    ["kind"],
)
HTTP_REQUESTS = Counter(
    "relaydesk_http_requests_total",
    "HTTP requests answered by the gateway, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "relaydesk_http_request_seconds",
    "HTTP request duration on the gateway, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# --- delivery to the outside --------------------------------------------------------------

CONNECTOR_SENDS = Counter(
    "relaydesk_connector_sends_total",
    "Replies sent to a messaging platform, by platform and outcome: sent, failed (the "
    "platform refused this message for good) or deferred (retried later).",
    ["platform", "outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "relaydesk_webhook_deliveries_total",
    "Outbound webhook delivery attempts, by outcome: delivered (2xx), rejected (another "
    "status), failed (no answer) or refused (the address is not allowed).",
    ["outcome"],
)

# --- the archive -----------------------------------------------------------------------------

HISTORY_BATCH_EVENTS = Histogram(
    "relaydesk_history_batch_events",
    "Events the history service archived in one database round trip.",
    buckets=BATCH_BUCKETS,
)

# --- the process ------------------------------------------------------------------------------

# From a millisecond (a busy loop) to seconds (a stall every client notices).
STALL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

EVENT_LOOP_LAG_SECONDS = Histogram(
    "relaydesk_event_loop_lag_seconds",
    "How late the process's event loop woke a periodic timer: the time it was busy elsewhere.",
    ["service"],
    buckets=STALL_BUCKETS,
)
GC_PAUSE_SECONDS = Histogram(
    "relaydesk_gc_pause_seconds",
    "Python garbage collections, by generation (2: full), and how long each held the process.",
    ["service", "generation"],
    buckets=STALL_BUCKETS,
)
