"""How long ``farl eval --episodes N`` takes, and what it measures: evaluation of a checkpoint.

Times ``farl eval`` itself (a subprocess, start-up included) and appends the figure with
the evaluation's mean, 95% confidence interval and success rate to
``benchmarks/results/eval_speed.csv`` (or ``--out``).

    python benchmarks/eval_speed.py runs/platform-fppo/.../checkpoints/best.pt --episodes 10000
    python benchmarks/eval_speed.py CHECKPOINT --episodes 1000 --stochastic \\
        --label "empty goal, 100k" --out results/football_eval.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS as RESULTS_DIR
from common import append_row, run_stamp

RESULTS = RESULTS_DIR / "eval_speed.csv"


def main() -> None:
    """Run farl eval once and report its wall time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--episodes", type=int, default=10000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--stochastic", action="store_true", help="sampled, not greedy, actions")
    parser.add_argument("--label", default="", help="what the checkpoint is, for the CSV")
    parser.add_argument("--out", type=Path, default=RESULTS, help="CSV to append to")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/eval_speed.py")
    command = [
        sys.executable,
        "-m",
        "farl_cli.cli",
        "eval",
        str(args.checkpoint),
        "--episodes",
        str(args.episodes),
        "--num-envs",
        str(args.num_envs),
        "--stochastic" if args.stochastic else "--deterministic",
        "--json",
    ]
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    info = json.loads(out)
    steps = info["episodes"] * info["mean_length"]
    mode = "deterministic" if info["deterministic"] else "stochastic"
    print(
        f"{info['preset']} on {info['env']} {args.label}: {info['episodes']:,} {mode} episodes, "
        f"{args.num_envs} envs: {wall:.1f} s in all ({info['seconds']:.1f} s evaluating, "
        f"{steps / info['seconds']:,.0f} steps/s); mean {info['return_name']} "
        f"{info['mean']:.4f} ± {info['ci95']:.4f} (95% CI), success {info['success_rate']}"
    )
    append_row(
        args.out,
        {
            "preset": info["preset"],
            "episodes": info["episodes"],
            "num_envs": args.num_envs,
            "wall_s": f"{wall:.1f}",
            "eval_s": f"{info['seconds']:.1f}",
            "mean_length": f"{info['mean_length']:.2f}",
            "mean_return": f"{info['mean']:.4f}",
            "ci95": f"{info['ci95']:.4f}",
            "success_rate": info["success_rate"],
            "env": info["env"],
            "mode": mode,
            "label": args.label,
            **stamp,
        },
    )


if __name__ == "__main__":
    main()
