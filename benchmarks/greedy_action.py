"""Which greedy action a trained factored policy should play: each head's mode or its mean bin.

A categorical head over 11 torque bins can be broad, or split between two bins far apart;
its most likely bin (the mode, what ``farl eval`` plays by default and what every learning
curve in the README evaluates) then ignores the rest of the head. Continuous SAC acts
greedily with its Gaussian's mean; the analogue for a head over evenly spaced bins is the
bin nearest its mean (``farl eval --greedy mean``). For each checkpoint this evaluates both,
and sampled actions, on the same episode seeds, prints them and appends a row to
``results/greedy_action.csv`` (with the commit and the command). Training is unchanged, so
the difference is the evaluation's alone.

    python benchmarks/greedy_action.py results/runs/<label>/base/seed*/checkpoints/last.pt
"""

from __future__ import annotations

from pathlib import Path

from common import checkpoint_parser, measure_checkpoints

from farl_cli.envs.vector import env_factory
from farl_cli.evaluation import evaluate
from farl_cli.training import restore

WAYS = {"mode": (True, "mode"), "mean": (True, "mean"), "sampled": (False, "mode")}


def greedy_returns(checkpoint: Path, episodes: int, num_envs: int, seed: int) -> dict[str, float]:
    """Mean evaluation return (and its standard deviation) of each way of acting."""
    restored = restore(checkpoint, "cpu")
    found: dict[str, float] = {}
    for way, (deterministic, greedy) in WAYS.items():
        act = restored.actor(deterministic, greedy)
        stats = evaluate(act, env_factory(restored.preset.env), episodes, num_envs, seed)
        found[way], found[f"{way}_std"] = stats.mean, stats.std
    return found


def main() -> None:
    """Evaluate each checkpoint three ways, print a line and save a row for it."""
    parser = checkpoint_parser(__doc__, "greedy_action.csv")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--num-envs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the episodes")
    args = parser.parse_args()
    measure_checkpoints(
        "benchmarks/greedy_action.py",
        args.checkpoints,
        args.out,
        lambda checkpoint: greedy_returns(checkpoint, args.episodes, args.num_envs, args.seed),
        lambda found: "  ".join(f"{w} {found[w]:.1f} ± {found[f'{w}_std']:.1f}" for w in WAYS),
        lambda found: {
            "episodes": args.episodes,
            "seed": args.seed,
            **{key: round(value, 2) for key, value in found.items()},
        },
    )


if __name__ == "__main__":
    main()
