"""The bus client on aio-pika: topology, confirmed publishing, log reading, request/reply.

See docs/bus.md for the guarantees each part gives and does not give.
"""

from relaydesk.bus.connection import Bus
from relaydesk.bus.log_reader import LogReader
from relaydesk.bus.log_subscription import ReaderClosed
from relaydesk.bus.rpc import RemoteError, RequestTimeout

__all__ = ["Bus", "LogReader", "ReaderClosed", "RemoteError", "RequestTimeout"]
