"""Training throughput against Stable-Baselines3 on HalfCheetah: FPPO vs PPO, FSAC vs SAC.

Both train on HalfCheetah-v5 with every torque discretized into 11 bins (a MultiDiscrete
action space of 11^6 joint actions, built by farl's FactoredActions wrapper for both), with
the hyperparameters of the ``halfcheetah-fppo`` preset, the same number of environment steps,
one PyTorch thread each, one after the other in this one process. Prints both throughputs
and their ratio and appends them to ``benchmarks/results/throughput.csv``.

With ``--algo fsac``: FSAC (11 bins, independent) against SB3 SAC with continuous
actions, the same network sizes, batch size, learning starts and steps.

    pip install -e ".[bench]"
    python benchmarks/throughput.py --steps 32768
    python benchmarks/throughput.py --algo fsac --steps 6000
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from common import RESULTS as RESULTS_DIR
from common import append_row, farl_run, shown

from farl_cli.config import FPPOConfig, FSACConfig, load_preset
from farl_cli.envs import make_factored_env

RESULTS = RESULTS_DIR / "throughput.csv"


def sb3_ppo(steps: int, seed: int) -> float:
    """Environment steps per second of SB3 PPO with the same settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    preset = load_preset("halfcheetah-fppo")
    cfg = preset.agent
    assert isinstance(cfg, FPPOConfig)
    n = preset.env.num_envs
    started = time.perf_counter()  # like farl's figure, set-up included
    venv = DummyVecEnv([lambda: make_factored_env(preset.env)] * n)
    if cfg.normalize_observations:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.rollout_steps // n,
        batch_size=cfg.minibatch_size,
        n_epochs=cfg.epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_epsilon,
        ent_coef=cfg.entropy_coef,
        vf_coef=cfg.value_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={
            "net_arch": {"pi": cfg.hidden_sizes, "vf": cfg.hidden_sizes},
            "activation_fn": torch.nn.ReLU,
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - started
    venv.close()
    return model.num_timesteps / elapsed


def sb3_sac(steps: int, seed: int, learning_starts: int) -> float:
    """SB3 SAC with continuous actions and the same sizes, set-up included."""
    from stable_baselines3 import SAC

    from farl_cli.envs import make_env

    preset = load_preset("halfcheetah-fsac")
    cfg = preset.agent
    assert isinstance(cfg, FSACConfig)
    started = time.perf_counter()
    model = SAC(
        "MlpPolicy",
        make_env("halfcheetah"),
        learning_rate=cfg.learning_rate,
        buffer_size=cfg.buffer_size,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        learning_starts=learning_starts,
        train_freq=cfg.update_every,
        gradient_steps=cfg.gradient_steps,
        policy_kwargs={"net_arch": cfg.hidden_sizes, "activation_fn": torch.nn.ReLU},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - started)


def main() -> None:
    """Run both, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32768, help="environment steps each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algo", choices=["fppo", "fsac"], default="fppo")
    parser.add_argument("--learning-starts", type=int, default=1000, help="fsac: both")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.algo == "fsac":
        compare_fsac(args)
        return

    ours = farl_run("halfcheetah-fppo", args.steps, args.seed)
    print(f"farl FPPO (independent, 11 bins): {ours:8.0f} env steps/s")
    theirs = sb3_ppo(args.steps, args.seed)
    print(f"SB3 PPO   (MultiDiscrete, 11 bins): {theirs:8.0f} env steps/s")
    print(f"ratio farl / SB3: {ours / theirs:.2f}x over {args.steps:,} steps each")

    import stable_baselines3

    append_row(
        RESULTS,
        {
            "benchmark": "fppo-halfcheetah-11bins",
            "steps": args.steps,
            "farl_sps": f"{ours:.0f}",
            "sb3_sps": f"{theirs:.0f}",
            "ratio": f"{ours / theirs:.2f}",
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "python": platform.python_version(),
        },
    )
    print(f"saved to {shown(RESULTS)}")


def compare_fsac(args: argparse.Namespace) -> None:
    """FSAC (11 bins, independent) against SB3 SAC (continuous), same sizes and steps."""
    import stable_baselines3

    ours = farl_run(
        "halfcheetah-fsac", args.steps, args.seed, [f"agent.learning_starts={args.learning_starts}"]
    )
    print(f"farl FSAC (independent, 11 bins): {ours:8.1f} env steps/s")
    theirs = sb3_sac(args.steps, args.seed, args.learning_starts)
    print(f"SB3 SAC   (continuous actions):   {theirs:8.1f} env steps/s")
    print(
        f"ratio farl / SB3: {ours / theirs:.2f}x over {args.steps:,} steps each, "
        f"{args.steps - args.learning_starts:,} gradient steps"
    )
    append_row(
        RESULTS,
        {
            "benchmark": "fsac-halfcheetah-11bins-vs-sac-continuous",
            "steps": args.steps,
            "farl_sps": f"{ours:.1f}",
            "sb3_sps": f"{theirs:.1f}",
            "ratio": f"{ours / theirs:.2f}",
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "python": platform.python_version(),
        },
    )
    print(f"saved to {shown(RESULTS)}")


if __name__ == "__main__":
    main()
