"""The change requests operations (not implemented yet: the pipeline answers NotImplementedException)."""
