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

import torch
from common import RESULTS, append_row, farl_run, shown

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
        sps = farl_run(
            "football-3v1-fppo", args.steps, 0, [f"env.num_envs={workers}", "env.vector=async"]
        )
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
