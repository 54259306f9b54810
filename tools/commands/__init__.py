"""Sub-commands of the relaydesk CLI (bench, replay, audit, admin, export)."""
