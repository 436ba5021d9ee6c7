"""The configured tables operations (not implemented yet: the pipeline answers NotImplementedException)."""
