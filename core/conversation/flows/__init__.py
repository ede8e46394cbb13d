"""Conversation flows: each answers one kind of request."""
