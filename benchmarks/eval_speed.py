"""How long ``farl eval --episodes N`` takes: vectorized evaluation of a checkpoint.

Times ``farl eval`` itself (a subprocess, start-up included) and appends the figure to
``benchmarks/results/eval_speed.csv``.

    python benchmarks/eval_speed.py runs/platform-fppo/.../checkpoints/best.pt --episodes 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS as RESULTS_DIR
from common import append_row

RESULTS = RESULTS_DIR / "eval_speed.csv"


def main() -> None:
    """Run farl eval once and report its wall time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--episodes", type=int, default=10000)
    parser.add_argument("--num-envs", type=int, default=16)
    args = parser.parse_args()
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
        "--json",
    ]
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    info = json.loads(out)
    steps = info["episodes"] * info["mean_length"]
    print(
        f"{info['preset']}: {info['episodes']:,} episodes, {args.num_envs} envs: "
        f"{wall:.1f} s in all ({info['seconds']:.1f} s evaluating, {steps / info['seconds']:,.0f} "
        f"steps/s); mean return {info['mean']:.4f} ± {info['ci95']:.4f} (95% CI), "
        f"success {info['success_rate']}"
    )
    append_row(
        RESULTS,
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
        },
    )


if __name__ == "__main__":
    main()
