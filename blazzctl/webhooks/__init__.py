"""Webhook delivery: Standard Webhooks signing, the retry policy and the outbox dispatcher."""
