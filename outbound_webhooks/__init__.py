"""Outbound webhooks: each subscription reads the log from its own stored position."""
