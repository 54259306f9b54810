"""relaydesk gateway: the only HTTP/websocket surface for browsers."""
