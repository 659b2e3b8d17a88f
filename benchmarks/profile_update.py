"""Where the time of a training step goes, for farl and for Stable-Baselines3, side by side.

Trains the same HalfCheetah-v5 comparison as ``throughput.py`` (FPPO against PPO on the
same MultiDiscrete space, or with ``--algo fsac`` FSAC against continuous SAC), one thread,
and profiles a window of steady training (``--window`` environment steps from ``--start``,
after the first update) with ``torch.profiler``. Each library's time per environment step
in that window is split into: matrix products (``mm``, ``addmm``, ``bmm``), the optimizer's
step (Adam), every other PyTorch operation (element-wise arithmetic, the distributions'
terms, autograd's bookkeeping, the gradient clip) and what runs outside PyTorch (the
simulator, Python, NumPy); the simulator alone (HalfCheetah with farl's wrappers, random
actions) is timed for scale. The profiler slows small operations down, so read the split,
not the totals; the throughput without it is ``throughput.py``'s. The profiler keeps every
event in memory (about 2.5 GB per 100 FSAC updates here): keep the window short. Prints a
table and appends it to ``results/profile_update.csv``.

    pip install -e ".[bench]"
    python benchmarks/profile_update.py
    python benchmarks/profile_update.py --algo fsac
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from common import RESULTS, append_row, farl_run, run_stamp, shown
from throughput import PRESETS, sb3_ppo_speed, sb3_sac_speed
from torch.profiler import ProfilerActivity, profile

from farl_cli.config import load_preset
from farl_cli.envs import make_factored_env

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
PARTS = ("matrix products", "optimizer step", "other torch ops", "outside torch")
# FPPO updates every 2,048 steps: a window from one update to another holds whole cycles
DEFAULTS = {"fppo": (2048, 4096), "fsac": (2000, 200)}


class Window:
    """Profiles the environment steps between two ticks: the first at or past ``start``,
    the first at or past ``start + length``."""

    def __init__(self, start: int, length: int) -> None:
        self.start, self.end = start, start + length
        self.profiler = profile(activities=[ProfilerActivity.CPU])
        self.began: tuple[int, float] | None = None
        self.ended: tuple[int, float] | None = None

    def tick(self, step: int) -> None:
        """Called with the number of environment steps taken so far."""
        if self.began is None and step >= self.start:
            self.profiler.start()
            self.began = (step, time.perf_counter())
        elif self.began is not None and self.ended is None and step >= self.end:
            self.ended = (step, time.perf_counter())
            self.profiler.stop()

    def split(self) -> tuple[int, dict[str, float]]:
        """The window's environment steps and each part's seconds in it."""
        assert self.began and self.ended, "the run ended before the window closed"
        steps, wall = self.ended[0] - self.began[0], self.ended[1] - self.began[1]
        events = self.profiler.key_averages()
        traced = sum(e.self_cpu_time_total for e in events) / 1e6
        matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL) / 1e6
        adam = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")) / 1e6
        times = (matmul, adam, traced - matmul - adam, wall - traced)
        return steps, dict(zip(PARTS, times, strict=True))


def profile_farl(algo: str, window: Window, seed: int, learning_starts: int) -> None:
    """farl's run, its window ticked at every metrics row (each 100 steps)."""
    sets = ["train.log_every=100"]
    if algo == "fsac":
        sets.append(f"agent.learning_starts={learning_starts}")
    farl_run(PRESETS[algo], window.end + 2048, seed, sets,
             on_progress=lambda step, _sps, _row: window.tick(step))  # fmt: skip


def profile_sb3(algo: str, window: Window, seed: int, learning_starts: int) -> None:
    """SB3's run with the same settings, its window ticked at every environment step."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Tick(BaseCallback):
        def _on_step(self) -> bool:
            window.tick(self.num_timesteps)
            return True

    if algo == "fsac":
        sb3_sac_speed(window.end + 2048, seed, learning_starts, Tick())
    else:
        sb3_ppo_speed(window.end + 2048, seed, Tick())


def simulator_ms(steps: int, seed: int) -> float:
    """Milliseconds per step of the environment alone, with random actions."""
    env = make_factored_env(load_preset(PRESETS["fppo"]).env)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - started
    env.close()
    return 1e3 * elapsed / steps


def main() -> None:
    """Profile both libraries, print the split per environment step, save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["fppo", "fsac"], default="fppo")
    parser.add_argument("--start", type=int, default=None, help="first step profiled")
    parser.add_argument("--window", type=int, default=None, help="environment steps profiled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-starts", type=int, default=1000, help="fsac: both")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/profile_update.py")
    torch.set_num_threads(1)
    start, length = DEFAULTS[args.algo]
    start, length = args.start or start, args.window or length
    path = RESULTS / "profile_update.csv"
    simulator = simulator_ms(5000, args.seed)
    print(f"the simulator alone: {simulator:.3f} ms per step")
    runs: dict[str, Callable[[str, Window, int, int], None]] = {
        f"farl {args.algo.upper()}": profile_farl,
        "SB3 " + {"fppo": "PPO", "fsac": "SAC"}[args.algo]: profile_sb3,
    }
    header = "".join(f"{p:>18}" for p in PARTS)
    print(f"{'ms per environment step':<24}{header}{'total':>10}")
    for name, run in runs.items():
        window = Window(start, length)
        run(args.algo, window, args.seed, args.learning_starts)
        steps, seconds = window.split()
        parts = {p: 1e3 * s / steps for p, s in seconds.items()}
        total = sum(parts.values())
        print(f"{name:<24}" + "".join(f"{v:>18.3f}" for v in parts.values()) + f"{total:>10.3f}")
        append_row(
            path,
            {
                "run": name,
                "window": f"{window.start}-{window.end}",
                **{p.replace(" ", "_") + "_ms": f"{v:.3f}" for p, v in parts.items()},
                "total_ms": f"{total:.3f}",
                "simulator_alone_ms": f"{simulator:.3f}",
                **stamp,
            },
        )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
