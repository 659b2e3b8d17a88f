"""What the benchmark scripts share: result files and how their paths are shown."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def shown(path: Path) -> str:
    """A path relative to the working directory where possible (no machine paths in logs)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def append_row(path: Path, row: dict[str, object]) -> None:
    """Append one dated row to a CSV file, writing the header when the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), **row}
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(full))
        if new:
            writer.writeheader()
        writer.writerow(full)
