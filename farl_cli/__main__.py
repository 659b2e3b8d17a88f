"""``farl`` and ``python -m farl_cli``: signals are handled before anything heavy is imported.

A SIGTERM or Ctrl-C during start-up (importing Typer, Rich, PyTorch) ends farl with one line
and exit code 130, as it does later; a run installs its own handlers and saves a checkpoint.
"""

from __future__ import annotations

import signal
import sys


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run() -> None:
    """Entry point of the ``farl`` console script."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        from farl_cli.cli import main

        main()
    except KeyboardInterrupt:  # before a command's own handling began
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # an import that the interrupt broke
        from farl_cli.errors import interrupted

        if not interrupted(exc):
            raise
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
