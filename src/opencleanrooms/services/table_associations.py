"""The table associations operations (not implemented yet: the pipeline answers NotImplementedException)."""
