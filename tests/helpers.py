"""Helpers shared by tests that run farl as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def start_farl(*args: str) -> subprocess.Popen[str]:
    """``farl ARGS`` as a separate process in a process group of its own, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "farl_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_for_first_row(metrics: Path, timeout: float = 120.0) -> None:
    """Wait until a run's metrics.csv holds its header and one row."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"{metrics} got no row within {timeout} s")
