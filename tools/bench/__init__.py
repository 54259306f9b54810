"""`relaydesk bench`: the benchmark harness (docs/performance.md).

An open-loop load generator drives the real system (``relaydesk up`` on a scratch vhost
and data directory) and interleaved baselines (a bare websocket relay, a raw aio-pika
stream echo, the chat-service peer), and reports every relaydesk figure as a ratio to them.
"""
