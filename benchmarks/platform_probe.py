"""What a Platform policy does at the second gap, and what the game allows there.

Loads a Platform checkpoint and prints: one greedy episode step by step (position, speed,
the choice head's probabilities, the action taken), how often greedy and sampled episodes
reach the goal and how and where the others ended, and, from the game alone, which hop
parameters clear the second gap from which take-off points at full running speed. Appends a
summary row to ``results/platform_probe.csv`` (with the commit and the command).

    python benchmarks/platform_probe.py runs/platform-fppo/<run>/checkpoints/last.pt
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, append_row, run_stamp

from farl_cli.envs import make_factored_env
from farl_cli.envs.platform import PARAM_HIGH, PlatformEnv
from farl_cli.training import restore


def clears_second_gap(x: float, choice: int, param: float, trials: int = 20) -> int:
    """Of ``trials`` noisy take-offs at full running speed from ``x``, how many clear the gap."""
    env = PlatformEnv()
    cleared = 0
    for seed in range(trials):
        env.reset(seed=seed)
        env.enemies[1].x = 480.0  # out of the way
        env.x, env.y, env.vx, env.vy = x, 40.0, 69.3, 0.0
        params = [np.array([0.0]) for _ in range(3)]
        params[choice] = np.array([param])
        _, _, terminated, _, info = env.step((choice, tuple(params)))
        cleared += bool(info.get("is_success")) or not terminated
    return cleared


def describe_failures(ends: dict[str, list[float]]) -> str:
    """``fell x 962-965 (25); enemy x 94 (1)``: how failed episodes ended, and where."""
    return "; ".join(
        f"{how} x {min(xs):.0f}-{max(xs):.0f} ({len(xs)})"
        if len(xs) > 1
        else f"{how} x {xs[0]:.0f} (1)"
        for how, xs in sorted(ends.items(), key=lambda kv: -len(kv[1]))
    )


def main() -> None:
    """Probe the checkpoint, print, save a row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS / "platform_probe.csv")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/platform_probe.py")
    torch.set_num_threads(1)
    restored = restore(args.checkpoint)
    agent, env = restored.agent, make_factored_env(restored.preset.env)
    policy = agent.policy

    @torch.no_grad()
    def choice_probs(obs: np.ndarray) -> np.ndarray:
        x = agent._obs(obs[None])
        logits = policy.heads.head(policy.torso(x), torch.zeros(1, 2, dtype=torch.long), 0)
        return logits[0, :3].softmax(-1).numpy()

    print("one greedy episode (x, vx, P(run, hop, leap), action [choice, bin]):")
    obs, _ = env.reset(seed=1000)
    while True:
        base = env.unwrapped
        action = agent.act(obs[None], deterministic=True)[0]
        print(f"  x {base.x:6.1f}  vx {base.vx:5.1f}  {choice_probs(obs).round(3)}  {action}")
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            print(f"  ended: {info.get('termination', 'time limit')} at x {base.x:.1f}")
            break

    torch.manual_seed(0)
    successes, failures = {}, {}
    for mode, deterministic in (("greedy", True), ("sampled", False)):
        goals, ends = 0, collections.defaultdict(list)  # how failures ended: their x
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=2000 + episode)
            while True:
                obs, _, terminated, truncated, info = env.step(
                    agent.act(obs[None], deterministic=deterministic)[0]
                )
                if terminated or truncated:
                    goals += bool(info.get("is_success"))
                    if not info.get("is_success"):
                        ends[info.get("termination", "time limit")].append(env.unwrapped.x)
                    break
        successes[mode], failures[mode] = goals, describe_failures(ends)
        print(f"{mode}: reached the goal in {goals} of {args.episodes} episodes")
        if ends:
            print(f"  the others: {failures[mode]}")

    bins = restored.preset.env.bins
    print("hop take-offs at full speed that clear the second gap (of 20), by parameter bin:")
    lowest = None
    for x in (640.0, 674.0, 700.0, 720.0, 740.0):
        row = [clears_second_gap(x, 1, b / (bins - 1) * PARAM_HIGH[1]) for b in range(bins)]
        print(f"  from x {x:5.0f}: {row}")
        if lowest is None and max(row) == 20:
            lowest = x
    append_row(
        args.out,
        {
            "checkpoint_preset": restored.preset.name,
            "entropy_coef": getattr(restored.preset.agent, "entropy_coef", ""),
            "episodes": args.episodes,
            "greedy_goals": successes["greedy"],
            "sampled_goals": successes["sampled"],
            "greedy_failures": failures["greedy"],
            "sampled_failures": failures["sampled"],
            "lowest_clearing_takeoff_x": lowest,
            **stamp,
        },
    )


if __name__ == "__main__":
    main()
