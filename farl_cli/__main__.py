"""``farl`` and ``python -m farl_cli``: signals are handled before anything heavy is imported.

A SIGTERM or Ctrl-C while farl starts (importing Typer, Rich, PyTorch, MuJoCo) ends it at
once with one line and exit code 130: an exception raised into the middle of an import can
leave Python's import system broken (seen: a RecursionError, an exit by SIGINT), and nothing
has been written yet. Commands that own work switch to a clean stop once their imports are
done: a run saves a checkpoint, a sweep stops its trials (``errors.stop_cleanly``).
"""

from __future__ import annotations

import os
import signal
import sys


def _leave_now(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def run() -> None:
    """Entry point of the ``farl`` console script."""
    signal.signal(signal.SIGTERM, _leave_now)
    signal.signal(signal.SIGINT, _leave_now)
    try:
        from farl_cli.cli import main

        main()
    except KeyboardInterrupt:  # after a command switched to a clean stop
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
