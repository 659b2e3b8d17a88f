"""Several learning curves on one figure, from the CSVs of learning.py and sb3_learning.py.

    python benchmarks/plot_curves.py results/hopper-fsac-200k.csv results/sb3-sac-hopper.csv \\
        --labels "farl FSAC (11 bins)" "SB3 SAC (continuous)" --out results/hopper.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import plot_curves, read_curves, shown


def main() -> None:
    """Read the curves, print each one's final and best mean, save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csvs", type=Path, nargs="+")
    parser.add_argument("--labels", nargs="+", default=None, help="one per CSV (default: stem)")
    parser.add_argument("--title", default="")
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    labels = args.labels or [path.stem for path in args.csvs]
    if len(labels) != len(args.csvs):
        parser.error(f"{len(args.csvs)} CSVs but {len(labels)} labels")
    curves = []
    for label, path in zip(labels, args.csvs, strict=True):
        steps, table = read_curves(path)
        mean = np.nanmean(table, axis=0)
        best = int(np.nanargmax(mean))
        print(
            f"{label}: {len(table)} seed(s), final mean {mean[-1]:.3f} at step {steps[-1]:,}, "
            f"best mean {mean[best]:.3f} at step {steps[best]:,}"
        )
        curves.append((label, steps, table))
    plot_curves(curves, args.out, args.title, args.target)
    print(f"saved {shown(args.out)}")


if __name__ == "__main__":
    main()
