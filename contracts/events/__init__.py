"""Event payload models, one module per family."""
