"""Replay of the event log: read a slice (stream or archive), rebuild projections, compare."""
