"""How a planar MuJoCo policy moves: forward speed, and whether it runs upright or on its back.

HalfCheetah has a well-known trap: a policy that flips the body onto its back early can
still crawl forward, and then rarely learns to turn over. The return alone does not show
it. For each checkpoint this plays greedy episodes and prints the return, the mean forward
speed and the fraction of steps with the torso upside down (its pitch, the ``rooty`` joint,
more than 90 degrees from upright). Appends a row per checkpoint to
``results/posture.csv`` (with the commit and the command).

    python benchmarks/posture.py results/runs/<label>/base/seed*/checkpoints/last.pt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import checkpoint_parser, measure_checkpoints

from farl_cli.envs import make_factored_env
from farl_cli.errors import FarlError
from farl_cli.training import restore


def upside_down(pitch: float) -> bool:
    """A torso pitched more than 90 degrees either way from upright (any number of turns)."""
    return bool(np.cos(pitch) < 0.0)


def play_posture(checkpoint: Path, episodes: int, seed: int) -> dict[str, float]:
    """Greedy episodes of one checkpoint: mean return, forward speed and time upside down."""
    restored = restore(checkpoint, "cpu")
    env = make_factored_env(restored.preset.env)
    model = getattr(env.unwrapped, "model", None)
    if model is None or "rooty" not in [model.joint(j).name for j in range(model.njnt)]:
        raise FarlError(
            f"{checkpoint}: {restored.preset.env.name} has no 'rooty' joint; posture "
            "applies to the planar bodies (hopper, halfcheetah, walker2d)"
        )
    pitch_at = int(model.joint("rooty").qposadr[0])
    returns, speeds, flipped = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = restored.agent.act(obs[None], deterministic=True)[0]
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            speeds.append(float(info["x_velocity"]))
            flipped.append(upside_down(float(env.unwrapped.data.qpos[pitch_at])))
            done = terminated or truncated
        returns.append(total)
    env.close()
    return {
        "return": float(np.mean(returns)),
        "speed": float(np.mean(speeds)),
        "upside_down": float(np.mean(flipped)),
    }


def main() -> None:
    """Play each checkpoint, print a line and save a row for it."""
    parser = checkpoint_parser(__doc__, "posture.csv")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    args = parser.parse_args()
    measure_checkpoints(
        "benchmarks/posture.py",
        args.checkpoints,
        args.out,
        lambda checkpoint: play_posture(checkpoint, args.episodes, args.seed),
        lambda found: (
            f"return {found['return']:.1f}, forward speed {found['speed']:.2f} m/s, "
            f"upside down {found['upside_down']:.0%} of steps"
        ),
        lambda found: {
            "episodes": args.episodes,
            "return": round(found["return"], 3),
            "forward_speed": round(found["speed"], 4),
            "upside_down_fraction": round(found["upside_down"], 4),
        },
    )


if __name__ == "__main__":
    main()
