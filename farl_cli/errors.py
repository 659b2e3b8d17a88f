"""The one exception type the CLI turns into a clear message and exit code 2."""


class FarlError(Exception):
    """A user-facing error: bad input, a missing optional part, an unusable file."""
