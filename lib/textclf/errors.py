"""User-facing errors: one line that names the file, row, column or key at fault.

They are plain ValueErrors, so the library, the server and notebooks depend on nothing else;
the flows turn them into clean step failures (`textclf.steps`).
"""


class TextclfError(ValueError):
    headline = "textclf"

    def __init__(self, msg: str = ""):
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message


class DataError(TextclfError):
    """Bad input data: the message names the file, row or column."""

    headline = "Bad input data"


class ConfigError(TextclfError):
    """A config that cannot be composed or does not fit the schema."""

    headline = "Bad config"
