"""relaydesk shared runtime: settings, logging, the bus client, the store client, the CLI."""
