"""relaydesk connectors."""
