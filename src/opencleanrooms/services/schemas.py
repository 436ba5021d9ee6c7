"""The schemas operations (not implemented yet: the pipeline answers NotImplementedException)."""
