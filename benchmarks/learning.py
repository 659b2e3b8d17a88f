"""Learning curves: train a preset over several seeds, evaluate on a schedule, summarize.

Each seed is a full ``farl train`` run (deterministic evaluation every ``train.eval_every``
steps, ``train.eval_episodes`` episodes); seeds run in parallel worker processes. Writes
``<out>/<label>.csv`` (every seed's evaluations), ``<out>/<label>-summary.csv`` (per step:
mean, interquartile mean with a 95% bootstrap interval, fraction of seeds solved) and
``<out>/<label>.png``; every row records the commit and the command that made it.

    pip install -e ".[bench]"
    python benchmarks/learning.py --preset platform-fppo --seeds 10 --target 0.99
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

from common import RESULTS, report_curves, run_stamp

from farl_cli.curves import Curves


def run_seed(args: tuple[str, list[str], int, Path]) -> tuple[int, Path]:
    """Train one seed; return where its metrics are."""
    import torch

    from farl_cli.config import load_preset
    from farl_cli.training import train

    torch.set_num_threads(1)
    preset_name, overrides, seed, run_dir = args
    preset = load_preset(preset_name, [*overrides, f"train.seed={seed}"])
    result = train(preset, run_dir)
    return seed, result.metrics_path


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
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once")
    parser.add_argument("--target", type=float, default=None, help="return to reach")
    parser.add_argument("--label", default=None, help="file name stem (default: preset)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    stamp = run_stamp("benchmarks/learning.py")
    label = args.label or args.preset
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs_root = args.out / "runs" / label
    jobs = [(args.preset, args.overrides, s, runs_root / f"seed{s}") for s in seeds]
    with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        runs = list(pool.imap(run_seed, jobs, chunksize=1))  # a free worker takes the next seed
    report_curves(label, Curves.from_runs(runs), args.out, stamp, args.target)


if __name__ == "__main__":
    main()
