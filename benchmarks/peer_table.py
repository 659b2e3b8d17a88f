"""farl against its peer, side by side: one PNG per pair and one table of final returns.

Reads what ``learning.py`` (farl) and ``sb3_learning.py`` (the SB3 peer) saved in the results
folder: ``<label>.csv`` (every seed's evaluations) and ``<label>-runs.csv`` (wall time per
seed). For each ``--pair FARL:PEER`` it compares both at the last step every seed of both
reached: mean and standard deviation over seeds, every seed's value, the ratio of the means,
wall time per run; and, since one deterministic evaluation of a MuJoCo policy swings by
thousands from one to the next, each seed's mean over its last ``--last`` evaluations up to
that step, with their mean and standard deviation over seeds. Saves ``<farl>-vs-<peer>.png``
for each pair and ``<name>.csv`` with a row per pair (with the commits of both sources and
this command); prints a Markdown table. A side of a pair may join labels with ``+``
(``sb3-sac-hopper-300k+sb3-sac-hopper-300k-seed2``) when its seeds ran in different
sittings under different labels; a seed found twice is an error. Such a side is named in
the PNG by what its labels share (``sb3-sac-hopper-300k``).

    python benchmarks/peer_table.py --name mujoco-fppo \\
        --pair hopper-fppo:sb3-ppo-hopper --pair walker2d-fppo:sb3-ppo-walker2d
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, refuse, run_stamp, shown

from farl_cli.curves import Curves, read_seed_csv
from farl_cli.curves import plot as curve_plot
from farl_cli.errors import FarlError


def common_step(a: Curves, b: Curves) -> int:
    """The last step at which every seed of both has an evaluation."""

    def complete(c: Curves) -> set[int]:
        return {s for j, s in enumerate(c.steps) if np.isfinite(c.returns[:, j]).all()}

    steps = complete(a) & complete(b)
    if not steps:
        refuse("the two sources share no step at which every seed was evaluated")
    return max(steps)


def at_step(c: Curves, step: int) -> np.ndarray:
    """Every seed's evaluation at ``step``."""
    return c.returns[:, c.steps.index(step)]


def recent_mean(c: Curves, step: int, last: int) -> np.ndarray:
    """Every seed's mean over its last ``last`` evaluations up to and including ``step``."""
    j = c.steps.index(step)
    return np.nanmean(c.returns[:, max(0, j - last + 1) : j + 1], axis=1)


def spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation over seeds, rounded for the table."""
    return round(float(values.mean()), 1), round(float(values.std()), 1)


def pm(row: dict[str, Any], key: str) -> str:
    """``mean ± std`` of a row's ``<key>_mean`` and ``<key>_std``, for the printed table."""
    return f"{row[key + '_mean']:.0f} ± {row[key + '_std']:.0f}"


def files(out: Path, side: str, suffix: str) -> list[Path]:
    """One side's results files: ``<label><suffix>`` for each label of ``a`` or ``a+b``
    (seeds run in different sittings)."""
    return [out / f"{label}{suffix}" for label in side.split("+")]


def side_name(side: str) -> str:
    """A short name for one side: its label, or what joined labels share at both ends
    (``hopper-fsac-300k-seed0+hopper-fsac-300k-seed1`` is ``hopper-fsac-300k``,
    ``w-300k-seed0-xeon+w-300k-seed1-xeon`` is ``w-300k-xeon``, not the name of ``w-300k``)."""
    labels = side.split("+")
    if len(labels) == 1:
        return side
    shared, tail = labels[0], labels[0]
    for label in labels[1:]:
        while not label.startswith(shared):
            shared = shared[:-1]
        while not label.endswith(tail):
            tail = tail[1:]
    tail = tail[tail.index("-") :] if "-" in tail else ""  # whole words only: seed10, seed20
    if len(shared) + len(tail) > min(map(len, labels)):
        tail = ""  # the two ends overlap: labels that differ only inside a word
    shared = shared.rstrip("-").removesuffix("-seed").rstrip("-")
    return (shared + tail) or side


def source_info(out: Path, side: str) -> tuple[float, str, str]:
    """Mean wall seconds per seed, and the commits and machines that made one side's results.

    A file written before benchmarks recorded their machine counts as ``unrecorded``.
    """
    walls, commits, machines = [], set(), set()
    for path in files(out, side, "-runs.csv"):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                walls.append(float(row["wall_s"]))
                commits.add(row["commit"])
                machines.add(row.get("machine") or "unrecorded")
    return float(np.mean(walls)), " ".join(sorted(commits)), "; ".join(sorted(machines))


def compare(out: Path, ours: str, theirs: str, last: int) -> dict[str, Any]:
    """One row of the table, and the overlaid PNG."""
    a, b = (read_seed_csv(*files(out, side, ".csv")) for side in (ours, theirs))
    step = common_step(a, b)
    x, y = at_step(a, step), at_step(b, step)
    xl, yl = recent_mean(a, step, last), recent_mean(b, step, last)
    short, peer = side_name(ours), side_name(theirs)
    png = out / f"{short}-vs-{peer}.png"
    curve_plot([(f"farl {short}", a), (f"SB3 {peer}", b)], png, f"{short} vs {peer}")
    (wall_a, commit_a, where_a), (wall_b, commit_b, where_b) = (
        source_info(out, ours),
        source_info(out, theirs),
    )
    (farl_mean, farl_std), (peer_mean, peer_std) = spread(x), spread(y)
    (farl_last_mean, farl_last_std), (peer_last_mean, peer_last_std) = spread(xl), spread(yl)
    return {
        "farl": ours,
        "peer": theirs,
        "step": step,
        "farl_seeds": len(x),
        "farl_mean": farl_mean,
        "farl_std": farl_std,
        "farl_each": " ".join(f"{v:.0f}" for v in x),
        "peer_seeds": len(y),
        "peer_mean": peer_mean,
        "peer_std": peer_std,
        "peer_each": " ".join(f"{v:.0f}" for v in y),
        "ratio": round(float(x.mean() / y.mean()), 2),
        "last": last,
        "farl_last_mean": farl_last_mean,
        "farl_last_std": farl_last_std,
        "peer_last_mean": peer_last_mean,
        "peer_last_std": peer_last_std,
        "last_ratio": round(float(xl.mean() / yl.mean()), 2),
        "farl_wall_s": round(wall_a),
        "peer_wall_s": round(wall_b),
        "farl_commit": commit_a,
        "peer_commit": commit_b,
        "farl_machines": where_a,
        "peer_machines": where_b,
        "png": png.name,
    }


def main() -> None:
    """Compare every pair, save the PNGs and the table, print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pair",
        action="append",
        required=True,
        help="FARL_LABEL:PEER_LABEL; a side may join labels with + (seeds from several sittings)",
    )
    parser.add_argument("--name", required=True, help="the table's file name stem")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--last", type=int, default=5, help="evaluations per seed in the recent mean (default 5)"
    )
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/peer_table.py")
    rows = []
    for pair in args.pair:
        ours, sep, theirs = pair.partition(":")
        if not sep:
            refuse(f"--pair {pair!r}: expected FARL_LABEL:PEER_LABEL")
        try:
            rows.append(compare(args.out, ours, theirs, args.last))
        except FarlError as exc:  # a label's CSV that is not a learning CSV, a seed in two
            refuse(f"--pair {pair!r}: {exc}")
        except FileNotFoundError as exc:
            refuse(f"--pair {pair!r}: no results file {shown(Path(exc.filename))}")
    path = args.out / f"{args.name}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "command"])
        writer.writeheader()
        writer.writerows({**row, "command": stamp["command"]} for row in rows)
    recent = f"last {args.last} evaluations farl / peer (ratio)"
    print("| farl | peer | steps | farl mean ± std (seeds) | peer mean ± std (seeds) | ratio "
          f"| {recent} | wall per run farl / peer |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['farl']} | {r['peer']} | {r['step']:,} "
            f"| {pm(r, 'farl')} ({r['farl_each']}) | {pm(r, 'peer')} ({r['peer_each']}) "
            f"| {r['ratio']:.2f} | {pm(r, 'farl_last')} / {pm(r, 'peer_last')} "
            f"({r['last_ratio']:.2f}) "
            f"| {r['farl_wall_s'] / 60:.0f} / {r['peer_wall_s'] / 60:.0f} min |"
        )
    print(f"saved {shown(path)} and {len(rows)} PNG(s)")


if __name__ == "__main__":
    main()
