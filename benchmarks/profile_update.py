"""Where the time of a training step goes, for farl and for Stable-Baselines3, side by side.

Trains the same HalfCheetah-v5 comparison as ``throughput.py`` (FPPO against PPO on the
same MultiDiscrete space, or with ``--algo fsac`` FSAC against continuous SAC) under
``torch.profiler``, one thread, and splits each run's time per environment step into:
matrix products (``mm``, ``addmm``, ``bmm``), the optimizer's step (Adam), every other
PyTorch operation (element-wise arithmetic, the distributions' terms, autograd's
bookkeeping, the gradient clip) and what runs outside PyTorch (the simulator, Python); and
the simulator alone (HalfCheetah with farl's wrappers, random actions) for scale.
The profiler slows small operations down, so read the split, not the totals; the
throughput without it is ``throughput.py``'s. Prints a table and appends it to
``results/profile_update.csv``.

    pip install -e ".[bench]"
    python benchmarks/profile_update.py --steps 8192
    python benchmarks/profile_update.py --algo fsac --steps 3000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from common import RESULTS, append_row, farl_run, run_stamp, shown
from throughput import sb3_ppo_speed, sb3_sac_speed
from torch.profiler import ProfilerActivity, profile

from farl_cli.config import load_preset
from farl_cli.envs import make_factored_env

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
PARTS = ("matrix products", "optimizer step", "other torch ops", "outside torch")


def split(run: Callable[[], object]) -> dict[str, float]:
    """Seconds of each part of ``run()``, measured under the profiler."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
    events = prof.key_averages()
    traced = sum(e.self_cpu_time_total for e in events) / 1e6
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL) / 1e6
    optimizer = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")) / 1e6
    return dict(
        zip(PARTS, (matmul, optimizer, traced - matmul - optimizer, wall - traced), strict=True)
    )


def simulator_ms(steps: int, seed: int) -> float:
    """Milliseconds per step of the environment alone, with random actions."""
    env = make_factored_env(load_preset("halfcheetah-fppo").env)
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
    parser.add_argument("--steps", type=int, default=8192, help="environment steps each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algo", choices=["fppo", "fsac"], default="fppo")
    parser.add_argument("--learning-starts", type=int, default=1000, help="fsac: both")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/profile_update.py")
    torch.set_num_threads(1)
    if args.algo == "fppo":
        runs = {
            "farl FPPO": lambda: farl_run("halfcheetah-fppo", args.steps, args.seed),
            "SB3 PPO": lambda: sb3_ppo_speed(args.steps, args.seed),
        }
    else:
        starts = [f"agent.learning_starts={args.learning_starts}"]
        runs = {
            "farl FSAC": lambda: farl_run("halfcheetah-fsac", args.steps, args.seed, starts),
            "SB3 SAC": lambda: sb3_sac_speed(args.steps, args.seed, args.learning_starts),
        }
    path = RESULTS / "profile_update.csv"
    simulator = simulator_ms(args.steps, args.seed)
    print(f"the simulator alone: {simulator:.3f} ms per step")
    header = "".join(f"{p:>18}" for p in PARTS)
    print(f"{'ms per environment step':<24}{header}{'total':>10}")
    for name, run in runs.items():
        parts = {p: 1e3 * s / args.steps for p, s in split(run).items()}
        total = sum(parts.values())
        print(f"{name:<24}" + "".join(f"{v:>18.3f}" for v in parts.values()) + f"{total:>10.3f}")
        append_row(
            path,
            {
                "run": name,
                "steps": args.steps,
                **{p.replace(" ", "_") + "_ms": f"{v:.3f}" for p, v in parts.items()},
                "total_ms": f"{total:.3f}",
                "simulator_alone_ms": f"{simulator:.3f}",
                **stamp,
            },
        )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
