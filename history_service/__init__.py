"""relaydesk history_service."""
