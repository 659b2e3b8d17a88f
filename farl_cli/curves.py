"""Learning curves over seeds: reading runs' metrics, robust statistics, plots.

One seed proves nothing, and the mean of a few is pulled around by one outlier. Following
Agarwal et al. (2021, the ``rliable`` package), a set of runs is summarized at each step by
its interquartile mean (the mean of the middle half of the seeds) with a 95% percentile
bootstrap interval over seeds, beside the plain mean, every seed's value and the fraction of
seeds whose evaluation solved the task.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farl_cli.errors import FarlError

SOLVED_SUCCESS = 0.95  # a seed has solved when its evaluation's success rate reaches this


def trimmed_mean(values: np.ndarray, proportion: float = 0.25, axis: int = -1) -> np.ndarray:
    """Mean after cutting ``int(proportion * n)`` values from each end (``scipy``'s trim_mean)."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = values.shape[axis]
    cut = int(proportion * n)
    kept = np.take(values, np.arange(cut, n - cut), axis=axis)
    return kept.mean(axis=axis)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (rliable's ``aggregate_iqm``)."""
    return trimmed_mean(values, 0.25, axis)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., np.ndarray] = iqm,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled seeds."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(reps, x.size))]
    stats = statistic(samples, axis=-1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass
class Curves:
    """Seeds x steps tables of one configuration's metric (NaN where a seed has no value);
    by default its evaluations, with their success rates."""

    seeds: list[int]
    steps: list[int]
    returns: np.ndarray  # the column's values (evaluation returns by default)
    success: np.ndarray  # NaN throughout for other columns or environments without success

    @classmethod
    def from_points(cls, by_seed: dict[int, dict[int, tuple[float, float]]]) -> Curves:
        """From ``{seed: {step: (value, success or NaN)}}``; NaN where a seed has no step."""
        seeds = sorted(by_seed)
        steps = sorted({step for rows in by_seed.values() for step in rows})

        def table(index: int) -> np.ndarray:
            return np.array(
                [[by_seed[seed].get(s, (np.nan, np.nan))[index] for s in steps] for seed in seeds]
            ).reshape(len(seeds), len(steps))

        return cls(seeds, steps, table(0), table(1))

    @classmethod
    def from_runs(cls, runs: Sequence[tuple[int, Path]], column: str = "eval_return") -> Curves:
        """Read one column of every (seed, metrics.csv)."""
        return cls.from_points({seed: read_column(path, column) for seed, path in runs})

    @property
    def has_success(self) -> bool:
        """Whether the environment reports success at all."""
        return bool(np.isfinite(self.success).any())

    def final(self) -> np.ndarray:
        """Each seed's last evaluation."""
        return np.array([row[np.isfinite(row)][-1] for row in self.returns])

    def best(self) -> np.ndarray:
        """Each seed's best evaluation."""
        return np.nanmax(self.returns, axis=1)

    def first_reaching(self, target: float) -> list[int | None]:
        """The step at which each seed's evaluation first reached ``target``."""
        out: list[int | None] = []
        for row in self.returns:
            hits = np.flatnonzero(row >= target)
            out.append(self.steps[hits[0]] if len(hits) else None)
        return out

    def summary(self) -> list[dict[str, float | int]]:
        """Per step: mean, IQM with its 95% bootstrap interval, fraction of seeds solved."""
        rows: list[dict[str, float | int]] = []
        for j, step in enumerate(self.steps):
            column = self.returns[:, j]
            values = column[np.isfinite(column)]
            if values.size == 0:
                continue
            low, high = bootstrap_ci(values)
            row: dict[str, float | int] = {
                "step": step,
                "seeds": int(values.size),
                "mean": float(values.mean()),
                "iqm": float(iqm(values)),
                "iqm_low": low,
                "iqm_high": high,
            }
            if self.has_success:
                success = self.success[:, j]
                done = success[np.isfinite(success)]
                row["solved_fraction"] = float((done >= SOLVED_SUCCESS).mean())
            rows.append(row)
        return rows


def read_column(metrics_path: Path, column: str = "eval_return") -> dict[int, tuple[float, float]]:
    """``{step: (value, eval success or NaN)}`` of one column of a run's ``metrics.csv``."""
    out: dict[int, tuple[float, float]] = {}
    with metrics_path.open(newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            known = ", ".join(reader.fieldnames or [])
            raise FarlError(f"{metrics_path}: no column {column!r} (it has: {known})")
        for row in reader:
            if row.get(column):
                success = (row.get("eval_success") if column == "eval_return" else "") or "nan"
                out[int(row["step"])] = (float(row[column]), float(success))
    return out


def load_source(source: Path, column: str = "eval_return") -> Curves:
    """The curves of a run, a directory of runs, or a learning CSV (``step, seed,
    eval_return[, eval_success]``, as the benchmarks write for peers such as SB3)."""
    if source.suffix == ".csv" and source.is_file():
        if column != "eval_return":
            raise FarlError(f"{source}: a learning CSV holds evaluations only, not {column!r}")
        return read_seed_csv(source)
    return Curves.from_runs(find_runs(source), column)


def read_seed_csv(*paths: Path) -> Curves:
    """Curves from CSVs of every seed's evaluations (``step, seed, eval_return, ...``): one
    file, or several holding different seeds of one configuration (run in different
    sittings); a seed in two files is an error, not a silent overwrite."""
    by_seed: dict[int, dict[int, tuple[float, float]]] = {}
    for path in paths:
        mine: dict[int, dict[int, tuple[float, float]]] = {}
        try:
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    success = float(row.get("eval_success") or "nan")
                    mine.setdefault(int(row["seed"]), {})[int(row["step"])] = (
                        float(row["eval_return"]),
                        success,
                    )
        except (KeyError, ValueError) as exc:
            raise FarlError(
                f"{path}: not a learning CSV (step, seed, eval_return): {exc}"
            ) from None
        if twice := sorted(set(mine) & set(by_seed)):
            raise FarlError(f"{path}: seed(s) {twice} already read from an earlier file")
        by_seed.update(mine)
    return Curves.from_points(by_seed)


def find_runs(source: Path) -> list[tuple[int, Path]]:
    """(seed, metrics.csv) of a run directory, or of every run below a directory."""
    if (source / "metrics.csv").is_file():
        paths = [source / "metrics.csv"]
    else:
        paths = sorted(source.rglob("metrics.csv"))
    if not source.exists():
        raise FarlError(f"{source}: no such run or directory")
    if not paths:
        raise FarlError(f"{source}: holds no run (no metrics.csv below it)")
    return [(_seed_of(path.parent, i), path) for i, path in enumerate(paths)]


def _seed_of(run_dir: Path, fallback: int) -> int:
    import yaml

    try:
        preset = yaml.safe_load((run_dir / "preset.yaml").read_text(encoding="utf-8"))
        return int(preset["train"]["seed"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return fallback


def source_commit(root: Path | None = None) -> str:
    """The checkout's commit, ``+dirty`` when a tracked file anywhere in it (the package,
    the benchmark scripts, the presets) differs from it, else "unknown" outside a checkout.

    Results under ``benchmarks/results`` do not make the tree dirty: they are what a
    benchmark is writing.
    """
    cwd = root or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
             ":(top,exclude)benchmarks/results"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if status else head


def plot(
    groups: Sequence[tuple[str, Curves]],
    path: Path,
    title: str = "",
    target: float | None = None,
    ylabel: str = "deterministic evaluation return",
) -> None:
    """Each group's IQM with its 95% bootstrap band, every seed faintly behind it; a PNG."""
    try:
        import matplotlib
    except ImportError:
        raise FarlError("plots need matplotlib; install it with: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, curves in groups:
        summary = curves.summary()
        steps = [row["step"] for row in summary]
        n = len(curves.seeds)
        (line,) = ax.plot(
            steps, [row["iqm"] for row in summary], label=f"{label}: IQM of {n} seed(s)"
        )
        color = line.get_color()
        if n > 1:
            ax.fill_between(
                steps,
                [row["iqm_low"] for row in summary],
                [row["iqm_high"] for row in summary],
                alpha=0.25,
                color=color,
            )
            for row in curves.returns:
                keep = np.isfinite(row)
                ax.plot(np.array(curves.steps)[keep], row[keep], color=color, alpha=0.2, lw=0.8)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title + ("\n" if title else "") + "band: 95% bootstrap CI; thin lines: seeds")
    ax.legend(loc="best")  # where it covers the fewest curves: a low curve stays visible
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
