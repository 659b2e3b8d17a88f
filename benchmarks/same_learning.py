"""Does the current code learn exactly as an older commit did? Train both, compare weights.

A learning figure measured at an older commit still holds for today's code when the
algorithm's arithmetic has not changed: this trains the same preset, seed and budget with
the code of ``--base`` (checked out into a temporary worktree) and with the current checkout,
in one process each, and compares every tensor of the final agents bit for bit. Appends one
row to ``results/same_learning.csv`` (with the commit and the command).

    python benchmarks/same_learning.py --base 213e750 --preset platform-fppo --steps 20480
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import RESULTS, append_row, run_stamp

from farl_cli.checkpoint import load_checkpoint, named_tensors

ROOT = Path(__file__).resolve().parent.parent


def train_at(source: Path, preset: str, overrides: list[str], steps: int, run_dir: Path) -> Path:
    """``farl train`` with the code under ``source``; the path of its last checkpoint."""
    sets = [item for o in overrides for item in ("--set", o)]
    cadence = ["--set", f"train.eval_every={steps}", "--set", f"train.checkpoint_every={steps}"]
    subprocess.run(
        [sys.executable, "-m", "farl_cli.cli", "train", "--preset", preset, *sets, *cadence,
         "--total-steps", str(steps), "--run-dir", str(run_dir), "--quiet"],
        cwd=source, env={**os.environ, "PYTHONPATH": str(source)}, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return run_dir / "checkpoints" / "last.pt"


def main() -> None:
    """Train at both commits and report whether the agents are identical."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the older commit")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=RESULTS / "same_learning.csv")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/same_learning.py")
    base = subprocess.run(
        ["git", "rev-parse", args.base], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(worktree), base], cwd=ROOT,
                       check=True)  # fmt: skip
        try:
            old = train_at(worktree, args.preset, args.overrides, args.steps, Path(tmp) / "old")
            new = train_at(ROOT, args.preset, args.overrides, args.steps, Path(tmp) / "new")
            a = named_tensors(load_checkpoint(old)["agent"])
            b = named_tensors(load_checkpoint(new)["agent"])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                           check=False)  # fmt: skip
    # the agent's learned state; optimizer moments and networks, not the new rollout field
    shared = sorted(set(a) & set(b))
    differ = [k for k in shared if not torch.equal(a[k], b[k])]
    verdict = "identical" if not differ else f"{len(differ)} of {len(shared)} tensors differ"
    print(f"{args.preset}, {args.steps:,} steps, {base[:7]} against the current code: {verdict}")
    if differ:
        print("  first:", ", ".join(differ[:5]))
    append_row(
        args.out,
        {"preset": args.preset, "steps": args.steps, "base": base, "overrides": " ".join(
            args.overrides), "tensors": len(shared), "verdict": verdict, **stamp},
    )  # fmt: skip


if __name__ == "__main__":
    main()
