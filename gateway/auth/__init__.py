"""Authentication (tokens) and authorisation (permissions) for the gateway."""
