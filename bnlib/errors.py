"""The one error type for bad user input, at the bottom of the import graph so every module
can raise it (``config`` normalises names through ``architectures``, which raises it too)."""


class ConfigError(ValueError):
    """Bad user input: an unknown name, an impossible value, a missing data path."""
