"""Inbound webhooks: verify, store or feed, answer fast."""
