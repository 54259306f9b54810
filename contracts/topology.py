"""Names of every exchange and queue; the bus declares them from here (docs/bus.md)."""

EVENTS_EXCHANGE = "relaydesk.events"  # topic, routing key "{tenant}.{type}"
LOG_STREAM = "relaydesk.log"  # stream queue bound "#": the event log
COMMANDS_EXCHANGE = "relaydesk.commands"  # direct, routing key = owning service
QUERIES_EXCHANGE = "relaydesk.queries"  # direct, routing key = owning service
DEAD_EXCHANGE = "relaydesk.dead"  # fanout
DEAD_QUEUE = "relaydesk.dead"

# Commands are retried at most this many times before they are dead-lettered with a
# reason; RabbitMQ 3.10 has no default limit, so a poison command would loop forever.
COMMAND_DELIVERY_LIMIT = 5


def command_queue(service: str) -> str:
    return f"relaydesk.commands.{service}"


def query_queue(service: str) -> str:
    return f"relaydesk.queries.{service}"
