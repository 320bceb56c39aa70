"""Outbox, relay, channel names and the broadcast hub."""
