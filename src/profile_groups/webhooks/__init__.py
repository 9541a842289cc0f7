"""Signed webhooks of membership changes and group events (docs/webhooks.md)."""
