"""Training throughput against Stable-Baselines3 on HalfCheetah: FPPO vs PPO, FSAC vs SAC.

Both train on HalfCheetah-v5 with every torque discretized into 11 bins (a MultiDiscrete
action space of 11^6 joint actions, built by farl's FactoredActions wrapper for both), with
the hyperparameters of the ``halfcheetah-fppo`` preset, the same number of environment steps,
one PyTorch thread each, one after the other in this one process. Prints both throughputs
and their ratio and appends them to ``benchmarks/results/throughput.csv``.

With ``--algo fsac``: FSAC (11 bins, independent) against SB3 SAC with continuous
actions, the same network sizes, batch size, learning starts and steps; then the
floating-point operations of one gradient step of each, and the ratio that farl could reach
if nothing but its update's arithmetic cost time (``results/fsac_arithmetic.csv``).

    pip install -e ".[bench]"
    python benchmarks/throughput.py --steps 32768
    python benchmarks/throughput.py --algo fsac --steps 6000
    python benchmarks/throughput.py --algo fsac --steps 6000 --set train.compile=true
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import torch
from common import RESULTS as RESULTS_DIR
from common import append_row, farl_run, run_stamp, sb3_ppo, sb3_sac, shown

from farl_cli.config import load_preset
from farl_cli.envs import make_factored_env

RESULTS = RESULTS_DIR / "throughput.csv"
ARITHMETIC = RESULTS_DIR / "fsac_arithmetic.csv"
PRESETS = {"fppo": "halfcheetah-fppo", "fsac": "halfcheetah-fsac"}  # what is compared


def sb3_ppo_speed(steps: int, seed: int, callback: Any = None) -> float:
    """Environment steps per second of SB3 PPO with the same settings, set-up included
    (``callback``: an SB3 callback, as ``model.learn`` takes)."""
    preset = load_preset(PRESETS["fppo"])
    started = time.perf_counter()  # like farl's figure, set-up included
    model = sb3_ppo(preset, seed, lambda: make_factored_env(preset.env))
    model.learn(total_timesteps=steps, callback=callback)
    elapsed = time.perf_counter() - started
    model.get_env().close()
    return model.num_timesteps / elapsed


def sb3_sac_speed(steps: int, seed: int, learning_starts: int, callback: Any = None) -> float:
    """SB3 SAC's environment steps per second, set-up included."""
    started = time.perf_counter()
    model = sb3_sac(load_preset(PRESETS["fsac"]), seed, learning_starts=learning_starts)
    model.learn(total_timesteps=steps, callback=callback)
    return model.num_timesteps / (time.perf_counter() - started)


def update_flops() -> tuple[float, float]:
    """Floating-point operations of one gradient step: farl FSAC's and SB3 SAC's."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from farl_cli.agents import make_agent
    from farl_cli.agents.fsac import FSACAgent
    from farl_cli.training import probe_env

    preset = load_preset(PRESETS["fsac"])
    obs_dim, space = probe_env(preset.env)
    agent = make_agent(preset, obs_dim, space)
    assert isinstance(agent, FSACAgent)
    rng = np.random.default_rng(0)
    batch_size = preset.agent.batch_size
    obs = rng.normal(size=(batch_size, obs_dim)).astype(np.float32)
    actions = rng.integers(0, space.sizes, size=(batch_size, space.n_dims))
    agent.buffer.add(obs, actions, np.zeros(batch_size), obs, np.zeros(batch_size, bool))
    with FlopCounterMode(display=False) as ours:
        agent.update(agent.buffer.sample(batch_size))
    model = sb3_sac(preset, 0, learning_starts=10 * batch_size)
    model.learn(total_timesteps=batch_size)  # fills the buffer, no gradient step yet
    with FlopCounterMode(display=False) as theirs:
        model.train(gradient_steps=1, batch_size=batch_size)
    return float(ours.get_total_flops()), float(theirs.get_total_flops())


def matmul_rate(size: int = 256, repeats: int = 2000) -> float:
    """Floating-point operations per second of this machine's ``size``-square matrix
    products on one thread: the pace of the networks' arithmetic."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(100):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def main() -> None:
    """Run both, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32768, help="environment steps each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algo", choices=["fppo", "fsac"], default="fppo")
    parser.add_argument("--learning-starts", type=int, default=1000, help="fsac: both")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="farl's preset override, e.g. train.compile=true or train.device=cuda",
    )
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/throughput.py")
    torch.set_num_threads(1)
    if args.algo == "fsac":
        compare_fsac(args, stamp)
        return

    ours = farl_run(PRESETS["fppo"], args.steps, args.seed, args.overrides)
    print(f"farl FPPO (independent, 11 bins): {ours:8.0f} env steps/s")
    theirs = sb3_ppo_speed(args.steps, args.seed)
    print(f"SB3 PPO   (MultiDiscrete, 11 bins): {theirs:8.0f} env steps/s")
    print(f"ratio farl / SB3: {ours / theirs:.2f}x over {args.steps:,} steps each")

    import stable_baselines3

    append_row(
        RESULTS,
        {
            "benchmark": "fppo-halfcheetah-11bins",
            "farl_settings": " ".join(args.overrides),
            "steps": args.steps,
            "farl_sps": f"{ours:.0f}",
            "sb3_sps": f"{theirs:.0f}",
            "ratio": f"{ours / theirs:.2f}",
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "python": platform.python_version(),
            **stamp,
        },
    )
    print(f"saved to {shown(RESULTS)}")


def compare_fsac(args: argparse.Namespace, stamp: dict[str, str]) -> None:
    """FSAC (11 bins, independent) against SB3 SAC (continuous), same sizes and steps."""
    import stable_baselines3

    ours = farl_run(
        PRESETS["fsac"],
        args.steps,
        args.seed,
        [f"agent.learning_starts={args.learning_starts}", *args.overrides],
    )
    print(f"farl FSAC (independent, 11 bins): {ours:8.1f} env steps/s")
    theirs = sb3_sac_speed(args.steps, args.seed, args.learning_starts)
    print(f"SB3 SAC   (continuous actions):   {theirs:8.1f} env steps/s")
    print(
        f"ratio farl / SB3: {ours / theirs:.2f}x over {args.steps:,} steps each, "
        f"{args.steps - args.learning_starts:,} gradient steps"
    )
    # the arithmetic both must do bounds the ratio: FSAC at zero overhead and free env steps
    ours_flops, theirs_flops = update_flops()
    rate = matmul_rate()
    floor_ms = 1e3 * ours_flops / rate
    print(
        f"one gradient step: farl {ours_flops / 1e6:.0f} MFLOP, SB3 {theirs_flops / 1e6:.0f} "
        f"MFLOP; matrix products here run at {rate / 1e9:.0f} GFLOP/s, so farl's update "
        f"costs at least {floor_ms:.1f} ms and the ratio cannot exceed "
        f"{1e3 / theirs / floor_ms:.2f}x"
    )
    append_row(
        RESULTS,
        {
            "benchmark": "fsac-halfcheetah-11bins-vs-sac-continuous",
            "farl_settings": " ".join(args.overrides),
            "steps": args.steps,
            "farl_sps": f"{ours:.1f}",
            "sb3_sps": f"{theirs:.1f}",
            "ratio": f"{ours / theirs:.2f}",
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "python": platform.python_version(),
            **stamp,
        },
    )
    append_row(
        ARITHMETIC,
        {
            "benchmark": "fsac-halfcheetah-11bins-vs-sac-continuous",
            "farl_mflop_per_update": f"{ours_flops / 1e6:.0f}",
            "sb3_mflop_per_update": f"{theirs_flops / 1e6:.0f}",
            "matmul_gflops": f"{rate / 1e9:.0f}",
            "farl_floor_ms": f"{floor_ms:.2f}",
            "ratio_ceiling": f"{1e3 / theirs / floor_ms:.2f}",
            **stamp,
        },
    )
    print(f"saved to {shown(RESULTS)} and {shown(ARITHMETIC)}")


if __name__ == "__main__":
    main()
