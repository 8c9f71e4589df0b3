"""User-facing errors. They derive from MetaflowException so a failing step prints one clear
message (headline + text) instead of a traceback; they are also ValueErrors for library callers."""
from metaflow.exception import MetaflowException


class TextclfError(MetaflowException, ValueError):
    headline = "textclf"

    def __init__(self, msg: str = ""):
        super().__init__(msg)

    def __str__(self) -> str:
        return self.message


class DataError(TextclfError):
    """Bad input data: the message names the file, row or column."""

    headline = "Bad input data"


class ConfigError(TextclfError):
    """A config that cannot be composed or does not fit the schema."""

    headline = "Bad config"
