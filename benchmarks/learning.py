"""Learning curves: train a preset over several seeds, evaluate on a schedule, plot.

Each seed is a full ``farl train`` run (deterministic evaluation every ``train.eval_every``
steps, ``train.eval_episodes`` episodes); seeds run in parallel worker processes. Writes
``<out>/<label>.csv`` (step, seed, eval return) and ``<out>/<label>.png`` (mean over seeds
with the min-max band), and prints when the mean first reached the target.

    pip install -e ".[bench]"
    python benchmarks/learning.py --preset platform-fppo --seeds 5 --target 0.99
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

from common import RESULTS, metrics_curve, plot_curves, shown, summarize, tabulate, write_curves


def run_seed(args: tuple[str, list[str], int, Path]) -> tuple[int, list[tuple[int, float]], float]:
    """Train one seed; return its (step, eval return) pairs and wall time."""
    import torch

    from farl_cli.config import load_preset
    from farl_cli.training import train

    torch.set_num_threads(1)
    preset_name, overrides, seed, run_dir = args
    preset = load_preset(preset_name, [*overrides, f"train.seed={seed}"])
    started = time.perf_counter()
    result = train(preset, run_dir)
    return seed, metrics_curve(result.metrics_path), time.perf_counter() - started


def main() -> None:
    """Run the seeds, save CSV and PNG, print the summary."""
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

    label = args.label or args.preset
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs_root = args.out / "runs" / label
    jobs = [(args.preset, args.overrides, s, runs_root / f"seed{s}") for s in seeds]
    with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        results = sorted(pool.map(run_seed, jobs))

    csv_path = args.out / f"{label}.csv"
    write_curves(csv_path, [(seed, curve) for seed, curve, _ in results])

    print(f"overrides: {args.overrides or 'none'}")
    for seed, _, wall in results:
        print(f"  seed {seed}: {wall:.0f} s")
    seeds, steps, table = tabulate([(seed, curve) for seed, curve, _ in results])
    summarize(label, seeds, steps, table, args.target)

    png_path = args.out / f"{label}.png"
    plot_curves([(label, steps, table)], png_path, label, args.target)
    print(f"saved {shown(csv_path)} and {shown(png_path)}")


if __name__ == "__main__":
    main()
