"""The one exception type the CLI turns into a clear message and exit code 2; interrupts."""

import contextlib


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


def stop_cleanly() -> None:
    """From now on SIGINT and SIGTERM raise KeyboardInterrupt, for a command that stops its
    work cleanly (the ``farl`` script starts with both ending the process at once)."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, interrupt)
