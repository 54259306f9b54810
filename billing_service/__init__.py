"""relaydesk billing_service."""
