"""The analysis templates operations (not implemented yet: the pipeline answers NotImplementedException)."""
