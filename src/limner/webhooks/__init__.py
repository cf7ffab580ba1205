"""Webhooks: Standard Webhooks v1 signing and the outbox dispatcher."""
