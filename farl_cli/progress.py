"""Progress while training: a Rich live display, a CSV of metrics, TensorBoard if installed."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from farl_cli.runs import write_metrics


class MetricsWriter:
    """Rows of metrics appended to a CSV file (and to TensorBoard when it is installed)."""

    def __init__(self, path: Path, columns: list[str], tensorboard_dir: Path | None) -> None:
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            columns = _widen(path, columns)
        self.columns = columns
        self._file = path.open("a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if new:
            self._csv.writeheader()
        self._tb: Any = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tb = None
            else:
                self._tb = SummaryWriter(str(tensorboard_dir))

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard event files are written."""
        return self._tb is not None

    def write(self, row: dict[str, Any]) -> None:
        """Append one row; missing columns stay empty."""
        self._csv.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()
        if self._tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the files."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _widen(path: Path, columns: list[str]) -> list[str]:
    """The columns of an existing metrics file, widened to ``columns`` if it lacks some.

    A run resumed by code that logs new metrics rewrites its file under the wider header
    (the new columns empty in the old rows) rather than append rows that outgrow it; columns
    the code no longer logs are kept, empty from here on.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        old = list(reader.fieldnames or [])
        if not set(columns) - set(old):
            return old
        rows = list(reader)
    wide = [*columns, *(c for c in old if c not in columns)]
    write_metrics(path, wide, rows)
    return wide


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


class TrainDisplay:
    """A live progress bar (steps, steps/s, time left) and the latest returns and losses."""

    def __init__(self, console: Console, title: str, total: int, start: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]:>7} steps/s"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, sps="-")
        self.latest: dict[str, Any] = {}
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    FIRST = ("train_return", "eval_return", "eval_success")
    SHOWN_BY_THE_BAR = ("step", "wall_time", "steps_per_second")

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        keys = [*self.FIRST, *(k for k in self.latest if k not in self.FIRST)]
        items = [
            (k, self.latest[k])
            for k in keys
            if k in self.latest and k not in self.SHOWN_BY_THE_BAR and self.latest[k] is not None
        ]
        for key, value in items:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(key, text)
        return Group(self.progress, table)

    def __enter__(self) -> TrainDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(None, None, None)

    def update(self, step: int, sps: float, latest: dict[str, Any]) -> None:
        """Show the current step, throughput and latest metrics."""
        self.latest.update(latest)
        self.progress.update(self.task, completed=step, sps=f"{sps:,.0f}")
        self.live.update(self._render())


class SweepDisplay:
    """A sweep at a glance: trials done, running (with their steps), pending and failed."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.live = Live(Table(), console=console, refresh_per_second=2, transient=False)

    def __enter__(self) -> SweepDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, status: Any) -> None:
        """Redraw from a ``farl_cli.sweep.SweepStatus``."""
        failed = f", {len(status.failed)} failed" if status.failed else ""
        counts = (
            f"{len(status.done)} done, {len(status.running)} running, "
            f"{status.pending} pending{failed}"
        )
        table = Table(title=f"{self.title}: {counts}", title_justify="left")
        for name in ("configuration", "seed", "step", "last eval"):
            table.add_column(name, justify="left" if name == "configuration" else "right")
        for trial, (step, last) in sorted(status.running.items(), key=lambda kv: kv[0].run_dir):
            shown = "-" if last is None else f"{last:.4g}"
            table.add_row(trial.config, str(trial.seed), f"{step:,}/{trial.total_steps:,}", shown)
        self.live.update(table)
