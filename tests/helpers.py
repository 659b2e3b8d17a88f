"""Helpers shared by tests that run farl as a separate process."""

from __future__ import annotations

import time
from pathlib import Path


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
