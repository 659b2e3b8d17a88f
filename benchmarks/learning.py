"""Learning curves: train a preset over several seeds, evaluate on a schedule, summarize.

Each seed is a full farl run (deterministic evaluation every ``train.eval_every`` steps,
``train.eval_episodes`` episodes); the seeds are a ``farl sweep`` on Ray in
``<out>/runs/<label>/``, so running the same command again continues an interrupted
benchmark (Ctrl-C or SIGTERM): finished seeds are kept, interrupted ones resume from their
newest checkpoint; with a larger ``train.total_steps`` it continues finished seeds to the
new budget. Checkpoints keep the replay buffer (``train.save_buffer``), so a resumed
seed learns exactly as an uninterrupted one would; without it, a resumed FSAC seed would
refill an empty buffer with uniform actions and learn from a different past.
Writes ``<out>/<label>.csv`` (every seed's evaluations), ``<out>/<label>-summary.csv`` (per
step: mean, interquartile mean with a 95% bootstrap interval, fraction of seeds solved),
``<out>/<label>.png`` and ``<out>/<label>-runs.csv`` (steps and wall time per seed);
every row records the commit and the command that made it. An interrupted benchmark
writes them too, up to the step each seed reached (``-runs.csv`` says which).

    pip install -e ".[bench,ray]"
    python benchmarks/learning.py --preset platform-fppo --seeds 10 --target 0.99
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import RESULTS, refuse, report_curves, run_stamp, write_runs

from farl_cli.curves import Curves
from farl_cli.errors import FarlError, stop_cleanly
from farl_cli.sweep import plan_sweep, run_sweep


def main() -> None:
    """Run the seeds, save CSVs and PNG, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="preset override section.key=value (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once (CPUs)")
    parser.add_argument("--target", type=float, default=None, help="return to reach")
    parser.add_argument("--label", default=None, help="file name stem (default: preset)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    stop_cleanly()  # also in the background, where SIGINT is ignored
    stamp = run_stamp("benchmarks/learning.py")
    label = args.label or args.preset
    sets = [*args.overrides, "train.save_buffer=true"]  # no effect on agents without one
    try:
        sweep = plan_sweep(
            args.preset, args.seeds, [], sets, label, args.out / "runs", args.first_seed, "--label"
        )
    except FarlError as exc:  # a bad preset or --set, or a label that holds another benchmark
        refuse(str(exc))
    runs = [(t.seed, t.run_dir / "metrics.csv") for t in sweep.trials]
    try:
        status = run_sweep(sweep, num_cpus=args.jobs)
    except KeyboardInterrupt:
        save(label, runs, args.out, stamp, args.target)
        raise SystemExit(
            "interrupted; the CSVs hold the steps reached (see -runs.csv), and the same "
            "command continues from the checkpoints"
        ) from None
    for trial, why in status.failed:
        raise SystemExit(f"seed {trial.seed} failed ({trial.run_dir}): {why}")
    save(label, runs, args.out, stamp, args.target)


def save(
    label: str,
    runs: list[tuple[int, Path]],
    out: Path,
    stamp: dict[str, str],
    target: float | None,
) -> None:
    """Write the label's CSVs and PNG from the seeds' logs, as far as each has evaluated."""
    started = [(seed, path) for seed, path in runs if path.exists()]
    curves = Curves.from_runs(started)
    evaluated = [
        s for s, row in zip(curves.seeds, curves.returns, strict=True) if np.isfinite(row).any()
    ]
    if not evaluated:
        return  # interrupted before any evaluation: nothing to report yet
    started = [(seed, path) for seed, path in started if seed in evaluated]
    report_curves(label, Curves.from_runs(started), out, stamp, target)
    walls = Curves.from_runs(started, "wall_time")  # cumulative over resumed sittings
    ends = []
    for seed, row in zip(walls.seeds, walls.returns, strict=True):
        last = int(np.flatnonzero(np.isfinite(row))[-1])
        ends.append((seed, walls.steps[last], float(row[last])))
    write_runs(label, ends, out, stamp)


if __name__ == "__main__":
    main()
