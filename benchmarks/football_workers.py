"""Football training throughput with 1, 2 and 4 engine worker processes.

Trains ``football-3v1-fppo`` (autoregressive FPPO, table 5 settings) for a fixed number of
environment steps with the engines in 1, 2 and 4 worker processes, prints environment
steps per second (set-up included) and appends them to ``results/football_workers.csv``,
with how long the paper's 50M steps would take at each speed.

    bash scripts/install-football.sh
    python benchmarks/football_workers.py --steps 6000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import RESULTS, append_row, shown

from farl_cli.config import load_preset
from farl_cli.training import train

PAPER_STEPS = 50_000_000


def main() -> None:
    """Time each worker count and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = RESULTS / "football_workers.csv"
    for workers in args.workers:
        preset = load_preset(
            "football-3v1-fppo",
            [
                f"env.num_envs={workers}",
                "env.vector=async",
                f"train.total_steps={args.steps}",
                f"train.eval_every={10 * args.steps}",
                f"train.checkpoint_every={10 * args.steps}",
            ],
        )
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = train(preset, Path(tmp) / "run")
            sps = result.global_step / (time.perf_counter() - started)
        days = PAPER_STEPS / sps / 86400
        print(f"{workers} worker(s): {sps:6.0f} env steps/s; 50M steps would take {days:.1f} days")
        append_row(
            out,
            {
                "workers": workers,
                "steps": args.steps,
                "sps": f"{sps:.0f}",
                "days_for_50M": f"{days:.1f}",
            },
        )
    print(f"saved to {shown(out)}")


if __name__ == "__main__":
    main()
