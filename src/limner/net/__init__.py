"""Outbound network access: where limner may connect to, and fetching with those rules."""
