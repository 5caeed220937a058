"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit status 2; library callers can catch it.
Anything else that escapes is a bug in aevb and keeps its traceback.
"""


class AevbError(ValueError):
    """Bad input: an unknown name, a missing or corrupt file, an invalid setting."""
