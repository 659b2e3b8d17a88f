"""The peer's learning curves: Stable-Baselines3 PPO or SAC, continuous actions, on a preset.

An FPPO preset (``hopper-fppo``) gives SB3 PPO with a Gaussian policy; an FSAC preset
(``hopper-fsac``) gives SB3 SAC. Both run on the same continuous environment that farl
discretizes, with the preset's network sizes and the hyperparameters that correspond (see
``sb3_ppo`` and ``sb3_sac`` in ``common.py``), and evaluate their deterministic policy on the
preset's schedule (``train.eval_every``, ``train.eval_episodes``).

Each seed is a Ray task that keeps its state in ``<out>/runs/<label>/seed<k>/``: weights,
optimizers, step count, the replay buffer (SAC) or the observation statistics (PPO), its
evaluations and its wall time, saved every ``train.checkpoint_every`` steps and when stopped
(Ctrl-C or SIGTERM), when the CSVs below are written up to the steps reached. The same
command continues an interrupted benchmark; a resumed seed starts a fresh episode and, for
PPO, a fresh rollout, and is still one run. Nothing is unpickled: tensors load with
``weights_only`` and arrays without pickle. As with ``learning.py``, ``<out>/runs/<label>/``
records the preset as resolved (``sweep.json``): a label continues only with the preset and
``--set`` it began with, so a preset changed since (``humanoid-fsac``'s buffer) is refused,
not silently mixed into a label's earlier seeds; a label begun before this record adopts
the preset of its next command.

``--quantize`` (SAC only) plays each of SAC's actions at the nearest of the preset's
``env.bins`` values per torque, the torques farl's factored policy chooses among: it tells
what the discretization alone costs a continuous learner.

Writes ``<label>.csv`` (every seed's evaluations), ``<label>-summary.csv``, ``<label>.png``
(as ``learning.py`` does) and ``<label>-runs.csv`` (steps and wall time per seed), each row
with the commit and the command.

    pip install -e ".[bench,ray]"
    python benchmarks/sb3_learning.py --preset hopper-fppo --seeds 3
    python benchmarks/sb3_learning.py --preset hopper-fsac --seeds 3 --steps 300000
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    RESULTS,
    on_ray,
    quantized,
    refuse,
    report_curves,
    run_stamp,
    sb3_ppo,
    sb3_sac,
    write_runs,
)

from farl_cli.config import FPPOConfig, load_preset
from farl_cli.curves import Curves
from farl_cli.errors import FarlError, stop_cleanly
from farl_cli.sweep import claim_sweep_dir, sweep_record

BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


@dataclass(frozen=True)
class SeedJob:
    """One seed of the peer: which preset, overrides, steps, and where its state lives."""

    preset: str
    overrides: tuple[str, ...]
    seed: int
    steps: int
    directory: str
    quantize: bool = False


def optimizers(model: Any) -> dict[str, Any]:
    """The model's optimizers by name: PPO's one, SAC's actor, critic and temperature."""
    named = {
        "policy": getattr(model.policy, "optimizer", None),
        "actor": getattr(getattr(model, "actor", None), "optimizer", None),
        "critic": getattr(getattr(model, "critic", None), "optimizer", None),
        "ent_coef": getattr(model, "ent_coef_optimizer", None),
    }
    return {name: opt for name, opt in named.items() if opt is not None}


def save_state(directory: Path, model: Any, progress: dict[str, Any]) -> None:
    """Write the seed's state to ``state.new`` and swap it in, so a crash keeps the old one."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    new, current, old = directory / "state.new", directory / "state", directory / "state.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    tensors: dict[str, Any] = {
        "policy": model.policy.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers(model).items()},
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
    }
    if getattr(model, "log_ent_coef", None) is not None:
        tensors["log_ent_coef"] = model.log_ent_coef.detach().clone()
    torch.save(tensors, new / "model.pt")
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        for name in BUFFER_ARRAYS:
            if getattr(buffer, name, None) is not None:
                np.save(new / f"{name}.npy", getattr(buffer, name))
        progress = {**progress, "buffer_pos": buffer.pos, "buffer_full": buffer.full}
    env = model.get_env()
    if isinstance(env, VecNormalize):
        rms = env.obs_rms
        np.savez(new / "obs_rms.npz", mean=rms.mean, var=rms.var, count=rms.count)
    (new / "progress.json").write_text(json.dumps(progress))
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def state_of(directory: Path) -> Path | None:
    """The seed's saved state directory, or None if it has none yet."""
    for state in (directory / "state", directory / "state.old"):  # .old: a crash mid-swap
        if state.exists():
            return state
    return None


def load_state(directory: Path, model: Any) -> dict[str, Any] | None:
    """Restore a saved seed into a freshly built ``model``; its progress, or None if new."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    state = state_of(directory)
    if state is None:
        return None
    tensors = torch.load(state / "model.pt", weights_only=True)
    model.policy.load_state_dict(tensors["policy"])
    for name, opt in optimizers(model).items():
        opt.load_state_dict(tensors["optimizers"][name])
    if "log_ent_coef" in tensors:
        with torch.no_grad():
            model.log_ent_coef.copy_(tensors["log_ent_coef"])
    model.num_timesteps, model._n_updates = tensors["num_timesteps"], tensors["n_updates"]
    progress = json.loads((state / "progress.json").read_text())
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        for name in BUFFER_ARRAYS:
            if (state / f"{name}.npy").exists():
                getattr(buffer, name)[...] = np.load(state / f"{name}.npy", allow_pickle=False)
        buffer.pos, buffer.full = progress["buffer_pos"], progress["buffer_full"]
    env = model.get_env()
    if isinstance(env, VecNormalize):
        saved = np.load(state / "obs_rms.npz", allow_pickle=False)
        env.obs_rms.mean, env.obs_rms.var = saved["mean"], saved["var"]
        env.obs_rms.count = float(saved["count"])
    return progress


def run_seed(job: SeedJob) -> dict[str, Any]:
    """Train (or continue) one seed; its curve, steps and wall time, and whether it finished."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecNormalize

    from farl_cli.envs import make_env
    from farl_cli.training import StopRequest

    torch.set_num_threads(1)
    stop = StopRequest()  # set by a signal: learning stops at the next environment step
    preset = load_preset(job.preset, [*job.overrides, f"train.seed={job.seed}"])
    train_cfg = preset.train
    if isinstance(preset.agent, FPPOConfig):
        model = sb3_ppo(preset, job.seed, lambda: make_env(preset.env.name))
    else:
        buffer_size = min(preset.agent.buffer_size, job.steps)
        model = sb3_sac(preset, job.seed, quantize=job.quantize, buffer_size=buffer_size)
    directory = Path(job.directory)
    progress = load_state(directory, model) or {"curve": [], "wall": 0.0}
    curve: list[list[float]] = progress["curve"]
    eval_env = make_env(preset.env.name)
    if job.quantize:
        eval_env = quantized(eval_env, preset.env.bins)
    venv = model.get_env()

    def evaluate() -> float:
        returns = []
        for episode in range(train_cfg.eval_episodes):
            obs, _ = eval_env.reset(seed=10_000 * (job.seed + 1) + episode)
            done, total = False, 0.0
            while not done:
                seen = venv.normalize_obs(obs) if isinstance(venv, VecNormalize) else obs
                action, _ = model.predict(seen, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    started = time.perf_counter()

    def snapshot() -> None:
        wall = progress["wall"] + time.perf_counter() - started
        save_state(directory, model, {**progress, "curve": curve, "wall": wall})

    class Track(BaseCallback):
        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % train_cfg.eval_every < model.n_envs:
                curve.append([step, evaluate()])
            if step % train_cfg.checkpoint_every < model.n_envs:
                snapshot()
            return not stop

    resumed = model.num_timesteps > 0
    if model.num_timesteps < job.steps:
        with stop.installed():
            model.learn(
                total_timesteps=job.steps - model.num_timesteps,
                callback=Track(),
                reset_num_timesteps=not resumed,
            )
    snapshot()
    finished = model.num_timesteps >= job.steps
    wall = progress["wall"] + time.perf_counter() - started
    return {"seed": job.seed, "curve": curve, "steps": model.num_timesteps, "wall": wall,
            "finished": finished}  # fmt: skip


def saved_results(jobs: list[SeedJob]) -> list[dict[str, Any]]:
    """What each seed's saved state holds, as :func:`run_seed` returns it; new seeds left out."""
    import torch

    results = []
    for job in jobs:
        state = state_of(Path(job.directory))
        if state is None:
            continue
        progress = json.loads((state / "progress.json").read_text())
        steps = int(torch.load(state / "model.pt", weights_only=True)["num_timesteps"])
        results.append({"seed": job.seed, "curve": progress["curve"], "steps": steps,
                        "wall": progress["wall"], "finished": steps >= job.steps})  # fmt: skip
    return results


def save(label: str, results: list[dict[str, Any]], out: Path, stamp: dict[str, str]) -> None:
    """Write the label's CSVs and PNG from the seeds' curves, as far as each has evaluated."""
    evaluated = sorted((r for r in results if r["curve"]), key=lambda r: r["seed"])
    if not evaluated:
        print("no seed has evaluated yet: nothing to save")
        return
    points = {r["seed"]: {int(s): (v, np.nan) for s, v in r["curve"]} for r in evaluated}
    report_curves(label, Curves.from_points(points), out, stamp)
    write_runs(label, [(r["seed"], r["steps"], r["wall"]) for r in evaluated], out, stamp)


def main() -> None:
    """Run or continue the seeds, save the CSVs and the PNG, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help="an FPPO or FSAC preset")
    parser.add_argument("--steps", type=int, default=None, help="default: train.total_steps")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once (CPUs)")
    parser.add_argument("--label", default=None, help="file name stem (default: sb3-<algo>-<env>)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quantize",
        action="store_true",
        help="SAC only: play each action at the nearest of the preset's env.bins per torque",
    )
    args = parser.parse_args()

    stop_cleanly()  # also in the background, where SIGINT is ignored
    stamp = run_stamp("benchmarks/sb3_learning.py")
    # --steps is the label's budget, as train.total_steps is a sweep's: one value, validated
    budget = [] if args.steps is None else [f"train.total_steps={args.steps}"]
    try:
        preset = load_preset(args.preset, [*args.overrides, *budget])
        steps = preset.train.total_steps
        algo = "ppo" if isinstance(preset.agent, FPPOConfig) else "sac"
        label = args.label or f"sb3-{algo}-{preset.env.name}"
        runs = args.out / "runs" / label
        if args.quantize and algo != "sac":
            raise FarlError("--quantize applies to SAC (an FSAC preset) only")
        sets = [*args.overrides, *(["--quantize"] if args.quantize else [])]
        claim_sweep_dir(runs, sweep_record(preset, {}, args.preset, sets), "--label")
    except FarlError as exc:  # a bad preset or --set, or a label that holds another benchmark
        refuse(str(exc))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [
        SeedJob(args.preset, tuple(args.overrides), s, steps, str(runs / f"seed{s}"), args.quantize)
        for s in seeds
    ]
    partial = (
        "the CSVs hold the steps reached (see -runs.csv), and the same command continues "
        "from the saved state"
    )
    try:
        results = on_ray(run_seed, jobs, args.jobs)
    except KeyboardInterrupt:
        save(label, saved_results(jobs), args.out, stamp)
        raise SystemExit(f"interrupted; {partial}") from None
    save(label, results, args.out, stamp)
    unfinished = [r["seed"] for r in results if not r["finished"]]
    if unfinished:
        raise SystemExit(f"seeds {unfinished} stopped early; {partial}")


if __name__ == "__main__":
    main()
