"""The loop around an agent: vector envs, evaluation, checkpoints, metrics, resume, Ctrl-C."""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from farl_cli.agents import Agent, make_agent
from farl_cli.agents.common import Greedy, resolve_device
from farl_cli.checkpoint import CheckpointError, named_tensors
from farl_cli.config import EnvConfig, Preset
from farl_cli.envs import make_factored_env
from farl_cli.envs.vector import env_factory, make_vector_env
from farl_cli.errors import FarlError
from farl_cli.evaluation import EvalStats, evaluate
from farl_cli.runs import (
    RunError,
    RunPlan,
    claim_run_dir,
    open_run,
    plan_resume,
    release_run_dir,
)
from farl_cli.spaces import FactoredSpace

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share seeds with training ones


@dataclass
class RunResult:
    """What a run wrote and how it ended."""

    run_dir: Path
    status: str  # "finished" or "interrupted"
    global_step: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_eval: float | None
    metrics_path: Path
    elapsed: float
    tensorboard: bool
    buffer_saved: bool | None = None  # replay-buffer agents: whether checkpoints hold it
    warnings: list[str] = field(default_factory=list)


@dataclass
class Counters:
    """Progress that a checkpoint carries so that a resumed run continues where it stopped."""

    global_step: int = 0
    episodes: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    next_log: int = 0
    best_eval: float | None = None
    elapsed: float = 0.0
    resumes: int = 0
    recent_returns: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed torch (the only generator the agents use); environments are seeded on reset."""
    torch.manual_seed(seed)


def probe_env(cfg: EnvConfig) -> tuple[int, FactoredSpace]:
    """Observation size and factored space of an environment, after one reset: a run finds
    out that its environment cannot start (a missing engine) before it writes anything."""
    env = make_factored_env(cfg)
    try:
        shape = env.observation_space.shape
        if shape is None or len(shape) != 1:
            raise FarlError(
                f"{cfg.name}: farl's networks take flat observations, got {env.observation_space}"
            )
        env.reset(seed=0)
        return int(shape[0]), env.factored_space
    finally:
        env.close()


class StopRequest:
    """Set by SIGINT or SIGTERM; the loop finishes its step, saves and returns."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Catch SIGINT and SIGTERM for the duration (main thread only)."""

        def handler(signum: int, _frame: object) -> None:
            self.signal = signal.Signals(signum).name

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave the handlers alone
            previous = {}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def final_observations(next_obs: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """``next_obs`` with each ended episode's last observation put back in its place."""
    if "_final_obs" not in infos or not infos["_final_obs"].any():
        return next_obs
    final = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        final[i] = infos["final_obs"][i]
    return final


def generator(state: dict[str, Any]) -> np.random.Generator:
    """A numpy generator in the saved ``bit_generator.state``."""
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = state
    return g


def checkpoint_payload(
    preset: Preset,
    obs_dim: int,
    space: FactoredSpace,
    agent: Agent,
    counters: Counters,
    envs: VectorEnv,
    obs: np.ndarray,
) -> dict[str, Any]:
    """Everything a checkpoint holds: plain data and tensors only.

    Where every environment can be snapshotted, their states, the current observations and
    the episodes in progress (their returns and lengths, in gymnasium's episode statistics)
    are included, so that a resumed run continues exactly where it stopped; otherwise it
    restarts its episodes.
    """
    env_rng = [g.bit_generator.state for g in envs.get_attr("np_random")]
    payload = {
        "preset": preset.model_dump(mode="json"),
        "obs_dim": obs_dim,
        "space": space.to_dict(),
        "agent": agent.state_dict(),
        "counters": counters.__dict__.copy(),
        "rng": {"torch": torch.get_rng_state(), "envs": env_rng},
    }
    snapshots = list(envs.get_attr("snapshot_state"))
    if all(s is not None for s in snapshots):
        payload["episodes"] = {
            "snapshots": snapshots,
            "obs": torch.from_numpy(np.array(obs)),  # its own dtype: MuJoCo's is float64
        }
    return payload


def restore_episodes(envs: VectorEnv, saved: Any, obs: np.ndarray, path: Path) -> np.ndarray | None:
    """Put the saved episodes in progress back into ``envs``; their observations."""
    if not isinstance(saved, dict):
        return None
    try:
        saved_obs = saved["obs"].numpy()
        if saved_obs.shape != obs.shape:
            raise ValueError("shapes differ from the environments'")
        envs.set_attr("snapshot_state", list(saved["snapshots"]))
        if "returns" in saved:  # written before the statistics were in the snapshots
            returns = saved["returns"].numpy().astype(np.float64)
            envs.set_attr("episode_returns", [float(r) for r in returns])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its episodes in progress do not fit ({exc})") from None
    return saved_obs.astype(obs.dtype)


def due(counters: Counters, what: str, every: int) -> bool:
    """The one cadence rule: whether ``next_<what>`` is reached, moving it past the step."""
    attr = f"next_{what}"
    nxt = getattr(counters, attr)
    if counters.global_step < nxt:
        return False
    while nxt <= counters.global_step:
        nxt += every
    setattr(counters, attr, nxt)
    return True


def train(
    preset: Preset,
    run_dir: Path,
    *,
    on_progress: Callable[[int, float, dict[str, Any]], None] | None = None,
    stop: StopRequest | None = None,
) -> RunResult:
    """Train a fresh run of ``preset`` in ``run_dir`` (created; refused if it holds a run)."""
    return run(RunPlan(preset, claim_run_dir(run_dir)), on_progress=on_progress, stop=stop)


def resume(
    checkpoint: Path,
    *,
    overrides: list[str] | None = None,
    preset: str | None = None,
    run_dir: Path | None = None,
    on_progress: Callable[[int, float, dict[str, Any]], None] | None = None,
    stop: StopRequest | None = None,
) -> RunResult:
    """Continue the run that wrote ``checkpoint`` (in place, or forked; see ``runs``)."""
    plan = plan_resume(checkpoint, preset, list(overrides or []), run_dir)
    return run(plan, on_progress=on_progress, stop=stop)


def check_resume_state(path: Path, data: dict[str, Any]) -> None:
    """Every field a resumed run restores has the type and size it must have."""
    counters, rng = data.get("counters"), data.get("rng")
    if not isinstance(counters, dict) or set(counters) != set(Counters.__dataclass_fields__):
        raise CheckpointError(f"{path}: its counters are missing or unknown")
    numbers = {k: v for k, v in counters.items() if k not in ("best_eval", "recent_returns")}
    for key, value in numbers.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{path}: counters.{key} must be a number >= 0, got {value!r}")
    if not isinstance(counters["global_step"], int):
        raise CheckpointError(f"{path}: counters.global_step must be an integer")
    if not isinstance(counters["recent_returns"], list) or not all(
        isinstance(x, int | float) for x in counters["recent_returns"]
    ):
        raise CheckpointError(f"{path}: counters.recent_returns must be a list of numbers")
    if counters["best_eval"] is not None and not isinstance(counters["best_eval"], int | float):
        raise CheckpointError(f"{path}: counters.best_eval must be a number")
    if not isinstance(rng, dict):
        raise CheckpointError(f"{path}: no random generator states")
    state = rng.get("torch")
    reference = torch.get_rng_state()
    if not (
        isinstance(state, torch.Tensor)
        and state.dtype == reference.dtype
        and state.shape == reference.shape
    ):
        raise CheckpointError(f"{path}: rng.torch is not a torch generator state")
    envs = rng.get("envs")
    if not isinstance(envs, list):
        raise CheckpointError(f"{path}: rng.envs must be a list of generator states")
    for i, env_state in enumerate(envs):
        try:
            generator(env_state)
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{path}: rng.envs[{i}] is not a generator state ({exc})"
            ) from None


def load_agent_state(agent: Agent, state: Any, path: Path) -> None:
    """Load weights, refusing ones that do not fit the agent or are not finite."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no agent state")
    for name, tensor in named_tensors(state).items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: agent.{name} holds NaN or infinite values")
    try:
        agent.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: its weights do not fit the agent ({reason})") from None


def run(
    plan: RunPlan,
    *,
    on_progress: Callable[[int, float, dict[str, Any]], None] | None = None,
    stop: StopRequest | None = None,
) -> RunResult:
    """The loop: act, step, learn; evaluate, log and checkpoint on their cadence; Ctrl-C."""
    from farl_cli.progress import MetricsWriter

    preset, run_dir, state = plan.preset, plan.run_dir, plan.resume
    cfg = preset.train
    stop = stop if stop is not None else StopRequest()
    with stop.installed():  # a signal during start-up stops the run cleanly too
        try:
            device = resolve_device(cfg.device)
            obs_dim, space = probe_env(preset.env)
            seed_everything(cfg.seed)
            agent = make_agent(preset, obs_dim, space, device)  # may refuse the preset
        except BaseException:
            release_run_dir(run_dir)
            raise
        store = open_run(plan)
        counters = Counters(
            next_eval=cfg.eval_every, next_checkpoint=cfg.checkpoint_every, next_log=cfg.log_every
        )
        if state is not None:
            load_agent_state(agent, state["agent"], plan.parent or run_dir)
            counters = Counters(**state["counters"])
            counters.resumes += 1
            torch.set_rng_state(state["rng"]["torch"])
        columns = [
            "step",
            "wall_time",
            "steps_per_second",
            "train_return",
            "eval_return",
            "eval_success",
            *agent.metric_names,
        ]
        try:
            writer = MetricsWriter(run_dir / "metrics.csv", columns, run_dir / "tensorboard")
        except OSError as exc:
            raise RunError(f"cannot write {run_dir / 'metrics.csv'}: {exc.strerror}") from None
        envs = make_vector_env(preset.env)
        recent = deque(counters.recent_returns, maxlen=20)
        best_name = "best.pt" if "best.pt" in store.index else None
        last: Path | None = None

        def save(name: str) -> Path:
            counters.recent_returns = list(recent)
            payload = checkpoint_payload(preset, obs_dim, space, agent, counters, envs, obs)
            return store.save(name, payload, counters.global_step)

        def run_eval() -> EvalStats:
            return evaluate(
                lambda o: agent.act(o, deterministic=True),
                env_factory(preset.env),
                cfg.eval_episodes,
                num_envs=min(cfg.eval_episodes, 8),
                seed=cfg.seed + EVAL_SEED_OFFSET,
            )

        n = preset.env.num_envs
        started = time.perf_counter() - counters.elapsed
        window_start, window_step = time.perf_counter(), counters.global_step
        try:
            obs, _ = envs.reset(seed=cfg.seed + 7919 * counters.resumes)
            restored = None
            if state is not None:  # the episodes in progress, exactly, where envs allow it
                restored = restore_episodes(
                    envs, state.get("episodes"), obs, plan.parent or run_dir
                )
            if restored is not None:
                obs = restored
            elif state is not None and len(state["rng"]["envs"]) == n:
                # fresh episodes, with the environments' generators restored
                envs.set_attr("np_random", [generator(g) for g in state["rng"]["envs"]])
            pending: list[dict[str, float]] = []  # agent metrics since the last row
            while counters.global_step < cfg.total_steps and not stop:
                actions = agent.explore(obs)
                next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                ended = terminated | truncated
                final_obs = final_observations(next_obs, infos)
                metrics = agent.observe(next_obs, final_obs, rewards, terminated, truncated)
                obs = next_obs
                counters.global_step += n
                if ended.any():  # gymnasium's episode statistics of the episodes that ended
                    recent.extend(infos["final_info"]["episode"]["r"][ended].tolist())
                    counters.episodes += int(ended.sum())

                if metrics is not None:
                    pending.append(metrics)
                row: dict[str, Any] | None = None
                if due(counters, "log", cfg.log_every) and pending:
                    # reading device tensors waits for the device: once per row, not per step
                    row = {k: float(np.mean([float(m[k]) for m in pending])) for k in pending[0]}
                    pending.clear()
                if due(counters, "eval", cfg.eval_every):
                    stats = run_eval()
                    row = row or {}
                    row["eval_return"] = stats.mean
                    if stats.success_rate is not None:
                        row["eval_success"] = stats.success_rate
                    if counters.best_eval is None or stats.mean > counters.best_eval:
                        counters.best_eval = stats.mean
                        save("best.pt")
                        best_name = "best.pt"
                if row is not None:
                    now = time.perf_counter()
                    sps = (counters.global_step - window_step) / max(now - window_start, 1e-9)
                    window_start, window_step = now, counters.global_step
                    counters.elapsed = now - started
                    row.update(
                        step=counters.global_step,
                        wall_time=counters.elapsed,
                        steps_per_second=sps,
                        train_return=float(np.mean(recent)) if recent else float("nan"),
                    )
                    writer.write(row)
                    if on_progress is not None:
                        on_progress(counters.global_step, sps, row)
                if due(counters, "checkpoint", cfg.checkpoint_every):
                    last = save(f"step-{counters.global_step}.pt")
            counters.elapsed = time.perf_counter() - started
            if last is None or store.index.get("last.pt") != counters.global_step:
                last = save("last.pt")
            if on_progress is not None:  # the display ends at the step the run ended at
                on_progress(counters.global_step, 0.0, {})
        finally:
            envs.close()
            writer.close()
    warnings = []
    if agent.updates == 0:
        starts = getattr(preset.agent, "learning_starts", None)
        why = f" (agent.learning_starts is {starts:,})" if starts else ""
        warnings.append(
            f"the run ended at step {counters.global_step:,} before the agent learned anything{why}"
        )
    return RunResult(
        run_dir=run_dir,
        status="interrupted" if stop else "finished",
        global_step=counters.global_step,
        last_checkpoint=store.dir / "last.pt",
        best_checkpoint=store.dir / best_name if best_name else None,
        best_eval=counters.best_eval,
        metrics_path=run_dir / "metrics.csv",
        elapsed=counters.elapsed,
        tensorboard=writer.tensorboard,
        buffer_saved=getattr(agent, "save_buffer", None),
        warnings=warnings,
    )


@dataclass
class Restored:
    """An agent rebuilt from a checkpoint alone."""

    preset: Preset
    agent: Agent
    obs_dim: int
    space: FactoredSpace
    data: dict[str, Any]

    def actor(
        self, deterministic: bool, greedy: str = "mode"
    ) -> Callable[[np.ndarray], np.ndarray]:
        """The agent's ``act`` with its deterministic choice (``greedy``: mode or mean),
        refused in one line where the choice means nothing."""
        if greedy not in ("mode", "mean"):
            raise FarlError(f"--greedy {greedy!r}: expected mode or mean")
        if greedy == "mean":
            if not deterministic:
                raise FarlError("--greedy mean chooses a deterministic action; drop --stochastic")
            if self.space.factorization != "independent" or not self.space.evenly_spaced:
                raise FarlError(
                    f"--greedy mean needs an independent factorization of evenly spaced values"
                    f" (a binned Box, such as the MuJoCo torques); {self.preset.name}'s is"
                    f" {self.space.factorization},"
                    f" {'' if self.space.evenly_spaced else 'not '}evenly spaced"
                )
        how: Greedy = "mean" if greedy == "mean" else "mode"
        return lambda obs: self.agent.act(obs, deterministic, how)


def restore(path: Path, device: str = "cpu") -> Restored:
    """Rebuild preset, environment description and agent (on ``device``: ``auto``, ``cpu``
    or ``cuda``) from one checkpoint file, whichever device wrote it."""
    from pydantic import ValidationError

    from farl_cli.checkpoint import load_checkpoint
    from farl_cli.config import format_errors

    data = load_checkpoint(path)
    try:
        preset = Preset.model_validate(data["preset"])
        space = FactoredSpace.from_dict(data["space"])
        obs_dim = int(data["obs_dim"])
    except ValidationError as exc:
        raise CheckpointError(format_errors(exc, f"{path} (its preset)", data["preset"])) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete farl checkpoint ({exc})") from None
    env_obs_dim, env_space = probe_env(preset.env)
    if (env_obs_dim, env_space.sizes) != (obs_dim, space.sizes):
        raise CheckpointError(
            f"{path}: the environment {preset.env.name!r} now has observations of size "
            f"{env_obs_dim} and sub-actions {list(env_space.sizes)}, the checkpoint expects "
            f"{obs_dim} and {list(space.sizes)}"
        )
    if "evenly_spaced" not in data["space"]:  # written before spaces said so: ask the env
        space = replace(space, evenly_spaced=env_space.evenly_spaced)
    agent = make_agent(preset, obs_dim, space, resolve_device(device))
    load_agent_state(agent, data.get("agent"), path)
    return Restored(preset, agent, obs_dim, space, data)
