"""Inbound webhooks of the chat channels (Telegram, WhatsApp)."""
