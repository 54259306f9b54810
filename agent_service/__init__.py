"""relaydesk agent_service."""
