"""Every vector environment farl builds: synchronous, in worker processes, or in Ray actors.

All reset an ended episode in the same step and report its final observation in
``infos["final_obs"]`` (gymnasium's ``AutoresetMode.SAME_STEP``).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

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
    for cheap environments), one worker process each (``async``, for expensive ones), or one
    Ray actor each (``ray``: on the cluster's machines)."""
    if cfg.vector == "ray":
        return RayVectorEnv(cfg)
    if cfg.vector == "async":
        fns = [functools.partial(worker_env, cfg)] * cfg.num_envs
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return sync_vector_env([env_factory(cfg)] * cfg.num_envs)


class EnvActor:
    """One environment inside a Ray actor; it resets an ended episode itself (SAME_STEP)."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.env = make_factored_env(cfg)

    def spaces(self) -> tuple[gym.Space, gym.Space, dict[str, Any], str | None]:
        """Observation and action spaces, metadata, render mode."""
        env = self.env
        return env.observation_space, env.action_space, dict(env.metadata), env.render_mode

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict]:
        """The environment's reset."""
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict, dict | None]:
        """One step; an ended episode's last observation and info come back as ``final``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        final = None
        if terminated or truncated:
            final = {"final_obs": obs, "final_info": info}
            obs, info = self.env.reset()
        return obs, float(reward), bool(terminated), bool(truncated), info, final

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """An attribute of the environment, called if it is a method."""
        value = self.env.get_wrapper_attr(name)
        return value(*args, **kwargs) if callable(value) else value

    def set_attr(self, name: str, value: Any) -> None:
        """Set an attribute of the environment."""
        self.env.set_wrapper_attr(name, value)

    def close(self) -> None:
        """Close the environment."""
        self.env.close()


class RayVectorEnv(VectorEnv):
    """``cfg.num_envs`` environments in Ray actors, stepped at once, spread over the cluster.

    Observations, rewards, ends and infos are those of ``SyncVectorEnv`` with
    ``AutoresetMode.SAME_STEP`` for the same seeds. Ray is joined if this process is already
    connected (a sweep's trial, or ``RAY_ADDRESS`` set), else started on this machine and shut
    down again on ``close()``. The actors reserve no CPU, so that they fit beside the trial
    that owns them.
    """

    def __init__(self, cfg: EnvConfig) -> None:
        from farl_cli.sweep import import_ray, init_ray

        self._ray = import_ray()
        self._started_ray = init_ray()
        remote = self._ray.remote(num_cpus=0)(EnvActor)
        self.actors = [
            remote.options(scheduling_strategy="SPREAD").remote(cfg) for _ in range(cfg.num_envs)
        ]
        obs_space, act_space, metadata, render_mode = self._ray.get(self.actors[0].spaces.remote())
        self.num_envs = cfg.num_envs
        self.metadata = {**metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = render_mode
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(act_space, self.num_envs)
        self._observations = create_empty_array(obs_space, n=self.num_envs, fn=np.zeros)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every environment (seeds ``seed, seed + 1, ...`` as ``SyncVectorEnv``)."""
        if seed is None:
            seed = [None] * self.num_envs
        elif isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"{len(seed)} seeds for {self.num_envs} environments")
        results = self._ray.get(
            [a.reset.remote(s, options) for a, s in zip(self.actors, seed, strict=True)]
        )
        infos: dict[str, Any] = {}
        for i, (_, info) in enumerate(results):
            infos = self._add_info(infos, info, i)
        obs = [o for o, _ in results]
        self._observations = concatenate(self.single_observation_space, obs, self._observations)
        return np.copy(self._observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every environment at once; ended episodes are reset in the same step."""
        refs = [
            actor.step.remote(action)
            for actor, action in zip(self.actors, iterate(self.action_space, actions), strict=True)
        ]
        results = self._ray.get(refs)
        infos: dict[str, Any] = {}
        for i, (_, _, _, _, info, final) in enumerate(results):
            if final is not None:
                infos = self._add_info(infos, final, i)
            infos = self._add_info(infos, info, i)
        obs = [r[0] for r in results]
        self._observations = concatenate(self.single_observation_space, obs, self._observations)
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results], dtype=np.bool_)
        truncated = np.array([r[3] for r in results], dtype=np.bool_)
        return np.copy(self._observations), rewards, terminated, truncated, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call (or read) ``name`` on every environment."""
        return tuple(self._ray.get([a.call.remote(name, *args, **kwargs) for a in self.actors]))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Read ``name`` from every environment."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set ``name`` on every environment: one value each, or the same for all."""
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"{len(values)} values for {self.num_envs} environments")
        self._ray.get(
            [a.set_attr.remote(name, v) for a, v in zip(self.actors, values, strict=True)]
        )

    def close_extras(self, **kwargs: Any) -> None:
        """Close the environments, end their actors, and Ray if this object started it."""
        actors, self.actors = getattr(self, "actors", []), []
        with contextlib.suppress(Exception):  # an actor that is gone has nothing to close
            self._ray.get([a.close.remote() for a in actors], timeout=30)
        for actor in actors:
            self._ray.kill(actor)
        if getattr(self, "_started_ray", False):
            self._ray.shutdown()
            self._started_ray = False
