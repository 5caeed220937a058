"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit status 2; library callers can catch it.
Anything else that escapes is a bug in aevb and keeps its traceback.
"""


class AevbError(ValueError):
    """Bad input: an unknown name, a missing or corrupt file, an invalid setting."""


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint; exit status 128 + signum."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class AevbWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it as
    one line starting `aevb: warning:`."""
