"""What the benchmark scripts share: result files and how their paths are shown."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
import torch

from farl_cli.config import FPPOConfig, FSACConfig, Preset, load_preset
from farl_cli.curves import Curves, source_commit
from farl_cli.curves import plot as curve_plot
from farl_cli.errors import FarlError
from farl_cli.networks import ACTIVATIONS
from farl_cli.runs import machine
from farl_cli.training import train

RESULTS = Path(__file__).parent / "results"
T = TypeVar("T")
R = TypeVar("R")


def shown(path: Path) -> str:
    """A path relative to the working directory where possible (no machine paths in logs)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def shown_run(checkpoint: Path) -> str:
    """A checkpoint's path as given, relative to the working directory (symlinks kept)."""
    try:
        return str(checkpoint.absolute().relative_to(Path.cwd()))
    except ValueError:
        return "/".join(checkpoint.parts[-5:])


def checkpoint_parser(doc: str, csv_name: str) -> argparse.ArgumentParser:
    """The command line of a script that measures checkpoints: the checkpoints, and ``--out``
    (``results/<csv_name>`` by default); the script adds its own options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=RESULTS / csv_name)
    return parser


def measure_checkpoints(
    script: str,
    checkpoints: list[Path],
    out: Path,
    measure: Callable[[Path], dict[str, float]],
    describe: Callable[[dict[str, float]], str],
    columns: Callable[[dict[str, float]], dict[str, object]],
) -> None:
    """For each checkpoint, on one torch thread: ``measure`` it (a checkpoint farl refuses
    stops the script as farl would), print its ``describe`` line, append its ``columns`` to
    ``out`` with the checkpoint, the commit and the command."""
    stamp = run_stamp(script)
    torch.set_num_threads(1)
    for checkpoint in checkpoints:
        try:
            found = measure(checkpoint)
        except FarlError as exc:
            refuse(str(exc))
        name = shown_run(checkpoint)
        print(f"{name}: {describe(found)}")
        append_row(out, {"checkpoint": name, **columns(found), **stamp})
    print(f"saved {shown(out)}")


def refuse(message: str) -> NoReturn:
    """Stop on bad input as ``farl`` does: the message on stderr, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def append_row(path: Path, row: dict[str, object]) -> None:
    """Append one dated row to a CSV file, writing the header when the file is new.

    A row with columns the file lacks widens the file's header; older rows leave them empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), **row}
    old: list[str] = []
    rows: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            old, rows = list(reader.fieldnames or []), list(reader)
    columns = old + [c for c in full if c not in old]
    rewrite = columns != old
    with path.open("w" if rewrite else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if rewrite:
            writer.writeheader()
            writer.writerows(rows)
        writer.writerow(full)


def farl_run(
    preset_name: str,
    steps: int,
    seed: int,
    extra: list[str] | None = None,
    on_progress: Callable[[int, float, dict[str, Any]], None] | None = None,
) -> float:
    """Environment steps per second of ``farl train`` on a preset (no evaluation), set-up
    included; ``on_progress`` is the run loop's hook at every metrics row."""
    preset = load_preset(
        preset_name,
        [
            f"train.total_steps={steps}",
            f"train.seed={seed}",
            f"train.eval_every={10 * steps}",
            f"train.checkpoint_every={10 * steps}",
            *(extra or []),
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(preset, Path(tmp) / "run", on_progress=on_progress)
        elapsed = time.perf_counter() - started
    return result.global_step / elapsed


def quantized(env: Any, bins: int) -> Any:
    """``env`` with each continuous action moved to the nearest of farl's ``bins`` values per
    dimension: the torques a factored agent can play, played by a continuous learner."""
    import gymnasium as gym

    from farl_cli.spaces import BoxCodec

    codec = BoxCodec(env.action_space, bins=bins)

    def nearest(action: np.ndarray) -> np.ndarray:
        distance = np.abs(codec.values - np.asarray(action, dtype=np.float64)[:, None])
        return codec.decode(distance.argmin(axis=1))

    return gym.wrappers.TransformAction(env, nearest, env.action_space)


def sb3_sac(preset: Preset, seed: int, *, quantize: bool = False, **overrides: Any) -> Any:
    """Stable-Baselines3 SAC with continuous actions on an FSAC preset's environment, with its
    network sizes and hyperparameters (``overrides`` replace SAC's keyword arguments); with
    ``quantize`` the environment plays each action at the preset's bins (``quantized``)."""
    from stable_baselines3 import SAC

    from farl_cli.envs import make_env

    env = make_env(preset.env.name)
    if quantize:
        env = quantized(env, preset.env.bins)
    cfg = preset.agent
    assert isinstance(cfg, FSACConfig), f"{preset.name} is not an FSAC preset"
    kwargs: dict[str, Any] = {
        "learning_rate": cfg.learning_rate,
        "buffer_size": cfg.buffer_size,
        "batch_size": cfg.batch_size,
        "tau": cfg.tau,
        "gamma": cfg.gamma,
        "learning_starts": cfg.learning_starts,
        "train_freq": cfg.update_every,
        "gradient_steps": cfg.gradient_steps,
        "policy_kwargs": {
            "net_arch": cfg.hidden_sizes,
            "activation_fn": ACTIVATIONS[cfg.activation],
        },
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }
    return SAC("MlpPolicy", env, **{**kwargs, **overrides})


def sb3_ppo(preset: Preset, seed: int, env_fn: Callable[[], Any], **overrides: Any) -> Any:
    """Stable-Baselines3 PPO on ``train.num_envs`` copies of ``env_fn()`` with an FPPO preset's
    network sizes, rollout and hyperparameters; observations (not rewards) normalized where
    the preset normalizes them. farl's ``rollout_steps`` counts all environments' steps,
    SB3's ``n_steps`` one environment's."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    cfg = preset.agent
    assert isinstance(cfg, FPPOConfig), f"{preset.name} is not an FPPO preset"
    n = preset.env.num_envs
    venv: Any = DummyVecEnv([env_fn] * n)
    if cfg.normalize_observations:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
    kwargs: dict[str, Any] = {
        "learning_rate": cfg.learning_rate,
        "n_steps": cfg.rollout_steps // n,
        "batch_size": cfg.minibatch_size,
        "n_epochs": cfg.epochs,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.gae_lambda,
        "clip_range": cfg.clip_epsilon,
        "ent_coef": cfg.entropy_coef,
        "vf_coef": cfg.value_coef,
        "max_grad_norm": cfg.max_grad_norm,
        "normalize_advantage": cfg.normalize_advantages,
        "policy_kwargs": {
            "net_arch": {"pi": cfg.hidden_sizes, "vf": cfg.hidden_sizes},
            "activation_fn": ACTIVATIONS[cfg.activation],
        },
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }
    return PPO("MlpPolicy", venv, **{**kwargs, **overrides})


def on_ray(fn: Callable[[T], R], jobs: list[T], cpus: int) -> list[R]:
    """``fn`` over ``jobs`` as Ray tasks of one CPU each, at most ``cpus`` at once."""
    from farl_cli.sweep import ray_session, stop_trials

    here = str(Path(__file__).resolve().parent)  # the tasks import this module too
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    with ray_session(None, num_cpus=cpus) as ray:
        env = {"env_vars": {"PYTHONPATH": path}}
        task = ray.remote(num_cpus=1, max_retries=0, runtime_env=env)(fn)
        refs = [task.remote(job) for job in jobs]
        try:
            return ray.get(refs)
        except KeyboardInterrupt:
            stop_trials(ray, refs)  # a SIGINT each: tasks that keep state save it
            raise


def write_runs(
    label: str, runs: list[tuple[int, int, float]], out: Path, stamp: dict[str, str]
) -> Path:
    """Save ``<label>-runs.csv``: each seed's environment steps and wall seconds."""
    path = out / f"{label}-runs.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "steps", "wall_s", *stamp])
        writer.writerows(
            [seed, steps, f"{wall:.0f}", *stamp.values()] for seed, steps, wall in runs
        )
    return path


def run_stamp(script: str) -> dict[str, str]:
    """The commit, the exact command and the machine of this benchmark, taken before it runs.

    The machine (CPU, its family and model, torch's CPU kernels, torch version) tells whether
    two results are seeds paired bit for bit: the same seed drifts apart on a CPU that rounds
    differently.
    """
    import shlex
    import sys

    where = machine()
    return {
        "commit": source_commit(),
        "command": shlex.join(["python", script, *sys.argv[1:]]),
        "machine": (
            f"{where['cpu']} ({where['cpu_model']}) {where['cpu_capability']} "
            f"torch {where['torch']}"
        ),
    }


def report_curves(
    label: str, curves: Curves, out: Path, stamp: dict[str, str], target: float | None = None
) -> None:
    """Save every seed's evaluations, the per-step summary and the PNG; print the summary.

    Every CSV row carries ``stamp``: the commit, the command and the machine that produced
    it, taken when the benchmark started (see :func:`run_stamp`).
    """
    command = stamp["command"]
    out.mkdir(parents=True, exist_ok=True)
    seeds_path, summary_path, png_path = (
        out / f"{label}.csv",
        out / f"{label}-summary.csv",
        out / f"{label}.png",
    )
    with seeds_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "seed", "eval_return", "eval_success", *stamp])
        tables = zip(curves.seeds, curves.returns, curves.success, strict=True)
        for seed, returns, success in tables:
            for step, value, rate in zip(curves.steps, returns, success, strict=True):
                if np.isfinite(value):
                    rate_text = f"{rate:.4f}" if np.isfinite(rate) else ""
                    writer.writerow([step, seed, f"{value:.6f}", rate_text, *stamp.values()])
    summary = curves.summary()
    with summary_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*summary[0], *stamp])
        writer.writeheader()
        writer.writerows({**{k: round(v, 6) for k, v in row.items()}, **stamp} for row in summary)
    curve_plot([(label, curves)], png_path, label, target)

    print(f"{label}: {len(curves.seeds)} seed(s); {command}")
    reached = curves.first_reaching(target) if target is not None else [None] * len(curves.seeds)
    for seed, row, hit in zip(curves.seeds, curves.returns, reached, strict=True):
        done = row[np.isfinite(row)]
        line = f"  seed {seed}: final {done[-1]:.4f}, best {done.max():.4f}"
        if target is not None:
            line += f", first >= {target}: {f'{hit:,}' if hit is not None else 'never'}"
            if hit is not None:
                later = row[curves.steps.index(hit) :]
                line += f", lowest after that {np.nanmin(later):.4f}"
        print(line)
    last = summary[-1]
    print(
        f"  at step {last['step']:,}: mean {last['mean']:.4f}, IQM {last['iqm']:.4f} "
        f"[{last['iqm_low']:.4f}, {last['iqm_high']:.4f}] (95% bootstrap CI)"
        + (f", solved {last['solved_fraction']:.0%}" if "solved_fraction" in last else "")
    )
    if target is not None:
        hits = [row["step"] for row in summary if row["mean"] >= target]
        print(f"  mean first >= {target}: {f'step {hits[0]:,}' if hits else 'never'}")
    print(f"saved {shown(seeds_path)}, {shown(summary_path)} and {shown(png_path)}")
