"""Routes: a logical model id over several targets (local models and hosted providers)."""
