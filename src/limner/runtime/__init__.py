"""Worker processes: devices, resident models, batches, progress and cancellation."""
