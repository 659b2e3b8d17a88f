"""The peer's learning curve: Stable-Baselines3 SAC with continuous actions on a farl preset.

Takes the environment, network sizes and SAC hyperparameters from an FSAC preset (for
example ``hopper-fsac``) and trains SB3 SAC on the continuous environment, evaluating its
deterministic policy on the preset's schedule (``train.eval_every``, ``train.eval_episodes``).
Writes ``<out>/<label>.csv`` in the format of ``learning.py`` (step, seed, eval_return), so
that ``farl plot`` can draw both on one figure.

    pip install -e ".[bench,ray]"
    python benchmarks/sb3_learning.py --preset hopper-fsac --steps 200000 \\
        --set train.eval_every=10000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import RESULTS, on_ray, sb3_sac, shown, write_curves


def run_seed(args: tuple[str, list[str], int, int]) -> tuple[int, list[tuple[int, float]], float]:
    """Train SB3 SAC for one seed; return its (step, eval return) pairs and wall time."""
    import numpy as np
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from farl_cli.config import FSACConfig, load_preset
    from farl_cli.envs import make_env

    torch.set_num_threads(1)
    preset_name, overrides, seed, steps = args
    preset = load_preset(preset_name, [*overrides, f"train.seed={seed}"])
    cfg, train_cfg = preset.agent, preset.train
    assert isinstance(cfg, FSACConfig), f"{preset_name} is not an FSAC preset"
    eval_env = make_env(preset.env.name)
    curve: list[tuple[int, float]] = []

    def evaluate(model: SAC) -> float:
        returns = []
        for episode in range(train_cfg.eval_episodes):
            obs, _ = eval_env.reset(seed=10_000 * (seed + 1) + episode)
            done, total = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % train_cfg.eval_every == 0:
                curve.append((self.num_timesteps, evaluate(self.model)))
            return True

    started = time.perf_counter()
    model = sb3_sac(preset, seed, buffer_size=min(cfg.buffer_size, steps))
    model.learn(total_timesteps=steps, callback=Evaluate())
    return seed, curve, time.perf_counter() - started


def main() -> None:
    """Run the seeds and save the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help="an FSAC preset")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--label", default=None, help="file name stem (default: sb3-sac-<env>)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    label = args.label or f"sb3-sac-{args.preset.removesuffix('-fsac')}"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(args.preset, args.overrides, s, args.steps) for s in seeds]
    results = sorted(on_ray(run_seed, jobs, args.jobs))
    csv_path = args.out / f"{label}.csv"
    write_curves(csv_path, [(seed, curve) for seed, curve, _ in results])
    for seed, curve, wall in results:
        best = max((v for _, v in curve), default=float("nan"))
        print(f"  seed {seed}: final {curve[-1][1]:.1f}, best {best:.1f}, {wall:.0f} s")
    print(f"saved {shown(csv_path)}")


if __name__ == "__main__":
    main()
