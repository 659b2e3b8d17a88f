"""Vectorized evaluation and its statistics."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from farl_cli.envs.vector import sync_vector_env
from farl_cli.envs.wrappers import RecordFrames, with_episode_statistics


@dataclass
class EvalStats:
    """Statistics of the returns of ``episodes`` finished episodes."""

    episodes: int
    mean: float
    std: float
    ci95: float
    median: float
    min: float
    max: float
    mean_length: float
    success_rate: float | None
    return_name: str = "return"  # what a return counts, from the env's metadata (football: goals)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def summarize(
    returns: list[float],
    lengths: list[int],
    successes: list[bool] | None,
    return_name: str = "return",
) -> EvalStats:
    """Mean, spread and a normal-approximation 95% confidence interval of the mean."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    return EvalStats(
        episodes=n,
        mean=float(r.mean()),
        std=std,
        ci95=1.96 * std / math.sqrt(n) if n > 1 else 0.0,
        median=float(np.median(r)),
        min=float(r.min()),
        max=float(r.max()),
        mean_length=float(np.mean(lengths)),
        success_rate=None if successes is None else float(np.mean(successes)),
        return_name=return_name,
    )


def final_successes(infos: dict[str, Any], ended: np.ndarray) -> np.ndarray | None:
    """``is_success`` of the episodes that ended this step, where the env reports it."""
    final = infos.get("final_info")
    if not final or "is_success" not in final:
        return None
    reported = final.get("_is_success", np.ones_like(ended))
    return np.where(ended & reported, final["is_success"], False)


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    env_fn: Callable[[], gym.Env],
    episodes: int,
    num_envs: int,
    seed: int,
    on_episode: Callable[[int], None] | None = None,
) -> EvalStats:
    """Run exactly ``episodes`` episodes across ``num_envs`` environments.

    Each environment gets a fixed quota of episodes, so that short episodes are not
    over-represented (which taking the first N to finish would do). Returns and lengths are
    those of gymnasium's episode statistics. An environment whose
    ``metadata["return_name"]`` says what its return counts names the statistics after it.
    ``seed`` seeds the episodes and a stochastic policy's sampling, without touching the
    caller's random generator (training evaluates in the middle of its own stream).
    """
    num_envs = max(1, min(num_envs, episodes))
    quota = np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])
    done = np.zeros(num_envs, dtype=np.int64)
    envs = sync_vector_env([lambda: with_episode_statistics(env_fn())] * num_envs)
    return_name = str(envs.envs[0].unwrapped.metadata.get("return_name", "return"))
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[bool] | None = []
    with torch.random.fork_rng(devices=[]), contextlib.closing(envs):
        torch.manual_seed(seed)
        obs, _ = envs.reset(seed=seed)
        while (done < quota).any():
            obs, _, terminated, truncated, infos = envs.step(act(obs))
            ended = terminated | truncated
            if not ended.any():
                continue
            success = final_successes(infos, ended)
            episode = infos["final_info"]["episode"]  # gymnasium's episode statistics
            for i in np.flatnonzero(ended):
                if done[i] < quota[i]:
                    done[i] += 1
                    returns.append(float(episode["r"][i]))
                    lengths.append(int(episode["l"][i]))
                    if success is None:
                        successes = None
                    elif successes is not None:
                        successes.append(bool(success[i]))
                    if on_episode is not None:
                        on_episode(len(returns))
    return summarize(returns, lengths, successes, return_name)


def play(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    episodes: int,
    seed: int,
    on_frames: Callable[[list[np.ndarray]], None] | None = None,
    on_episode: Callable[[int, float, int, dict[str, Any]], None] | None = None,
) -> list[float]:
    """Play whole episodes in one environment; ``seed`` seeds the first episode and a
    stochastic policy's sampling. Through a :class:`RecordFrames` wrapper, the frames it
    collects are handed to ``on_frames`` as they come."""
    torch.manual_seed(seed)
    recorder = env if isinstance(env, RecordFrames) else None

    def hand_over() -> None:
        if recorder is not None and on_frames is not None:
            frames = recorder.take_frames()
            if frames:
                on_frames(frames)

    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        hand_over()
        total, length = 0.0, 0
        while True:
            action = act(obs[None])[0]
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            hand_over()
            if terminated or truncated:
                break
        returns.append(total)
        if on_episode is not None:
            on_episode(episode, total, length, info)
    return returns
