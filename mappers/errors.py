"""Errors the mapping layer raises: one line saying what cannot be mapped and why."""


class MappingError(ValueError):
    """An Einsum, mapping or architecture that cannot be mapped; the message is one line."""


class OutOfTime(Exception):
    """A mapper's time limit ran out before it had an answer of its own (callers fall back)."""
