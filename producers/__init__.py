"""Webhook producers: verify, validate, persist to the inbox, enqueue. Nothing of routing."""
