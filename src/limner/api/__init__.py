"""The HTTP API process. It never imports torch: models run in worker processes."""
