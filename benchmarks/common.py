"""What the benchmark scripts share: result files and how their paths are shown."""

from __future__ import annotations

import csv
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from farl_cli.config import load_preset
from farl_cli.training import train

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


def farl_run(preset_name: str, steps: int, seed: int, extra: list[str] | None = None) -> float:
    """Environment steps per second of ``farl train`` on a preset (no evaluation), set-up
    included."""
    preset = load_preset(
        preset_name,
        [
            f"train.total_steps={steps}",
            f"train.seed={seed}",
            f"train.eval_every={10 * steps}",
            f"train.checkpoint_every={10 * steps}",
            *(extra or []),
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(preset, Path(tmp) / "run")
        elapsed = time.perf_counter() - started
    return result.global_step / elapsed
