"""Writes of the promotion workflow, one module per concern (see docs/architecture.md)."""
