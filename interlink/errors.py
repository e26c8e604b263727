"""The root of Interlink's exception tree."""


class InterlinkError(Exception):
    """Base of every error Interlink raises on purpose."""
