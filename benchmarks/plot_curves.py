"""Several learning curves on one figure, from the CSVs of learning.py and sb3_learning.py.

A source is a CSV (step, seed, eval_return) or a learning.py runs folder (its
``seed<N>/metrics.csv``, as far as the runs have got); ``--write-csv`` saves a folder's
curves as ``<folder name>.csv`` beside the figure. From runs folders, ``--column`` plots
another column of the metrics (``train_return``, ``entropy``, ...), averaged over windows of
``--window`` steps.

    python benchmarks/plot_curves.py results/hopper-fsac-100k.csv \\
        results/sb3-sac-hopper-100k.csv --labels "farl FSAC" "SB3 SAC" --out results/hopper.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import (
    plot_curves,
    read_curves,
    runs_curves,
    shown,
    summarize,
    tabulate,
    write_curves,
)


def main() -> None:
    """Read the curves, print their summaries, save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, nargs="+", help="CSV files or runs folders")
    parser.add_argument("--labels", nargs="+", default=None, help="one per source (default: name)")
    parser.add_argument("--title", default="")
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--write-csv", action="store_true", help="save folders' curves as CSV")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--column", default="eval_return", help="metrics column (runs folders)")
    parser.add_argument("--window", type=int, default=None, help="steps averaged per point")
    args = parser.parse_args()
    labels = args.labels or [path.stem for path in args.sources]
    if len(labels) != len(args.sources):
        parser.error(f"{len(args.sources)} sources but {len(labels)} labels")
    evaluations = args.column == "eval_return"
    if not evaluations and not all(source.is_dir() for source in args.sources):
        parser.error("--column reads runs folders; CSV sources hold evaluations only")
    curves = []
    for label, source in zip(labels, args.sources, strict=True):
        if source.is_dir():
            runs = runs_curves(source, args.column, args.window)
            if args.write_csv and evaluations:
                csv_path = args.out.parent / f"{source.name}.csv"
                write_curves(csv_path, runs)
                print(f"saved {shown(csv_path)}")
        else:
            runs = read_curves(source)
        seeds, steps, table = tabulate(runs)
        summarize(label, seeds, steps, table, args.target)
        curves.append((label, steps, table))
    plot_curves(curves, args.out, args.title, args.target, None if evaluations else args.column)
    print(f"saved {shown(args.out)}")


if __name__ == "__main__":
    main()
