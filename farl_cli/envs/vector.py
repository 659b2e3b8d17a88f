"""Every vector environment farl builds: synchronous, or in worker processes.

Both reset an ended episode in the same step and report its final observation in
``infos["final_obs"]`` (gymnasium's ``AutoresetMode.SAME_STEP``).
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from farl_cli.envs import make_factored_env

if TYPE_CHECKING:
    from farl_cli.config import EnvConfig


def env_factory(cfg: EnvConfig, render_mode: str | None = None) -> Callable[[], gym.Env]:
    """A picklable function that builds one factored environment (for worker processes too)."""
    return functools.partial(make_factored_env, cfg, render_mode)


def worker_env(cfg: EnvConfig) -> gym.Env:
    """An environment built inside a worker process, deaf to SIGINT.

    A Ctrl-C in a terminal reaches the whole process group; the main process then saves a
    checkpoint and closes the workers itself, which it cannot do if they died mid-step.
    Gymnasium also calls this once in the main process (to read the spaces), which must keep
    hearing Ctrl-C.
    """
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_factored_env(cfg)


def sync_vector_env(env_fns: list[Callable[[], gym.Env]]) -> SyncVectorEnv:
    """Environments stepped in turn in this process."""
    return SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)


def make_vector_env(cfg: EnvConfig) -> VectorEnv:
    """``cfg.num_envs`` environments as ``cfg.vector`` asks: in this process (``sync``, right
    for cheap environments) or one worker process each (``async``, for expensive ones)."""
    if cfg.vector == "async":
        fns = [functools.partial(worker_env, cfg)] * cfg.num_envs
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return sync_vector_env([env_factory(cfg)] * cfg.num_envs)
