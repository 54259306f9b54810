"""relaydesk runtime: settings, logging, the bus client, the store client, password hashing,
secret sealing, process entry. It imports only contracts/ (tests/foundation/test_layers.py)."""
