"""The one exception type the CLI turns into a clear message and exit code 2; interrupts."""


class FarlError(Exception):
    """A user-facing error: bad input, a missing optional part, an unusable file."""


def interrupted(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the causes of ``exc``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
