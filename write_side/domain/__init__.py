"""Aggregates, their events and invariants. Knows nothing of HTTP, Redis or SQL."""
