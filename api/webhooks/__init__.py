"""Inbound webhooks: verify, store, answer fast; the worker processes (DESIGN.md principle 4)."""
