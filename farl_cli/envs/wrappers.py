"""Wrappers that do one thing each: factor the action space, record frames."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

from farl_cli.errors import FarlError
from farl_cli.spaces import (
    Codec,
    FactoredSpace,
    Factorization,
    MultiDiscreteCodec,
    is_hybrid,
    make_codec,
)


class FactoredActions(gym.ActionWrapper):
    """Expose an environment with a ``MultiDiscrete`` action space and decode on ``step``."""

    def __init__(self, env: gym.Env, codec: Codec) -> None:
        super().__init__(env)
        self.codec = codec
        self.factored_space: FactoredSpace = codec.space
        self.action_space = spaces.MultiDiscrete(np.array(codec.space.sizes, dtype=np.int64))

    def action(self, action: np.ndarray) -> Any:
        """Decode sub-action indices into the wrapped environment's native action."""
        return self.codec.decode(action)

    @property
    def snapshot_state(self) -> dict[str, Any] | None:
        """The environment's whole state (its own, its generator's, its time limit's), or
        None where the environment cannot be snapshotted. Settable: a vector env's
        ``set_attr("snapshot_state", states)`` restores each of its environments."""
        base = self.env.unwrapped
        own = base_snapshot(base)
        if own is None:
            return None
        return {
            "env": own,
            "rng": base.np_random.bit_generator.state,
            "elapsed_steps": [w._elapsed_steps for w in _wrappers(self.env, TimeLimit)],
            "episode": [
                [float(w.episode_returns), int(w.episode_lengths)]
                for w in _wrappers(self.env, RecordEpisodeStatistics)
            ],
        }

    @snapshot_state.setter
    def snapshot_state(self, state: dict[str, Any]) -> None:
        base = self.env.unwrapped
        restore_base(base, state["env"])
        base.np_random.bit_generator.state = state["rng"]
        limits = _wrappers(self.env, TimeLimit)
        if len(limits) != len(state["elapsed_steps"]):
            raise ValueError("the snapshot's time limits do not match the environment's")
        for wrapper, elapsed in zip(limits, state["elapsed_steps"], strict=True):
            wrapper._elapsed_steps = elapsed
        stats = _wrappers(self.env, RecordEpisodeStatistics)
        episode = state.get("episode", [])  # absent from snapshots of older farl versions
        if episode and len(episode) != len(stats):
            raise ValueError("the snapshot's episode statistics do not match the environment's")
        for wrapper, (returns, length) in zip(stats, episode, strict=False):
            wrapper.episode_returns, wrapper.episode_lengths = float(returns), int(length)


class RecordFrames(gym.Wrapper):
    """Collects the frames of a video of the episodes played through it.

    Environments opt into more than one ``render()`` a step by declaring it:
    ``frames_of_last_action()`` gives every physics frame of the last action (Platform);
    ``record_episodes(directory)`` with ``recorded_videos()`` lets an environment write each
    episode's video itself, far faster than frame by frame (football's 2D sketch), used
    when ``own_videos`` is true.
    """

    def __init__(self, env: gym.Env, own_videos: bool = True) -> None:
        super().__init__(env)
        base = env.unwrapped
        self._every_frame = callable(getattr(base, "frames_of_last_action", None))
        self._videos_dir: str | None = None
        if own_videos and callable(getattr(base, "record_episodes", None)):
            import tempfile

            self._videos_dir = tempfile.mkdtemp(prefix="farl-videos-")
            base.record_episodes(self._videos_dir)
        self._frames: list[np.ndarray] = []

    @property
    def records_own_videos(self) -> bool:
        """Whether the environment writes the episodes' videos itself (see ``own_videos``)."""
        return self._videos_dir is not None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset; the first frame of the episode is collected where a step will not hold it."""
        obs, info = self.env.reset(**kwargs)
        if not self.records_own_videos and not self._every_frame:
            self._frames += self._render()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step, collecting the frames it drew."""
        out = self.env.step(action)
        if not self.records_own_videos:
            if self._every_frame:
                self._frames += list(self.env.unwrapped.frames_of_last_action())
            else:
                self._frames += self._render()
        return out

    def take_frames(self) -> list[np.ndarray]:
        """The frames collected since the last call."""
        frames, self._frames = self._frames, []
        return frames

    def own_videos(self) -> list[Path]:
        """The environment's own episode videos, once it is closed (it finishes them then)."""
        if self._videos_dir is None:
            return []
        return list(self.env.unwrapped.recorded_videos())

    def _render(self) -> list[np.ndarray]:
        try:
            frame = self.env.render()
        except gym.error.DependencyNotInstalled as exc:  # e.g. pygame for classic control
            spec = self.env.spec
            name = spec.id if spec is not None else type(self.env.unwrapped).__name__
            raise FarlError(f"{name} cannot draw frames: {exc}") from None
        return [] if frame is None else [np.asarray(frame)]

    def close(self) -> None:
        """Close the environment (videos it writes itself are kept until :meth:`discard`)."""
        self.env.close()

    def discard(self) -> None:
        """Remove the environment's own videos once they have been copied."""
        if self._videos_dir is not None:
            import shutil

            shutil.rmtree(self._videos_dir, ignore_errors=True)


W = TypeVar("W", bound=gym.Wrapper)


def with_episode_statistics(env: gym.Env) -> gym.Env:
    """``env`` recording gymnasium's episode statistics (wrapped unless it already does)."""
    return env if _wrappers(env, RecordEpisodeStatistics) else RecordEpisodeStatistics(env)


def _wrappers(env: gym.Env, kind: type[W]) -> list[W]:
    out = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            out.append(env)
        env = env.env
    return out


def _mujoco_of(base: gym.Env) -> ModuleType | None:
    """The ``mujoco`` module when ``base`` simulates with it (a ``model`` and ``data``), else None.

    Looked up, never imported: an environment built on MuJoCo has imported it already, and
    importing gymnasium's MuJoCo package at start-up would cost every run a quarter second and
    a GLFW probe in a child process (which, killed with farl, prints a traceback).
    """
    mujoco = sys.modules.get("mujoco")
    if mujoco is None:
        return None
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return mujoco
    return None


def base_snapshot(base: gym.Env) -> dict[str, Any] | None:
    """An environment's own state: what it declares (``snapshot()``), MuJoCo's integration
    state (positions, velocities, actuators, the solver's warm start), or None."""
    if callable(getattr(base, "snapshot", None)) and callable(getattr(base, "restore", None)):
        return {"declared": base.snapshot()}
    mujoco = _mujoco_of(base)
    if mujoco is not None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(base.model, spec))
        mujoco.mj_getState(base.model, base.data, state, spec)
        derived = {name: torch.from_numpy(a.copy()) for name, a in _model_sized(base).items()}
        return {"mujoco": torch.from_numpy(state), "derived": derived}
    return None


def _model_sized(base: gym.Env) -> dict[str, np.ndarray]:
    """The MuJoCo data's arrays whose sizes the model fixes, by name.

    Beyond the integration state these hold what the last step derived from it (body
    positions, inertias, velocities, forces), which an environment may read before its next
    step: Humanoid's reward takes its centre of mass from the body positions of the previous
    step's kinematics, which recomputing them from the restored state would not give. Arrays
    sized by the contacts of the moment (the constraint solver's) are left out; the next
    step recomputes them first.
    """
    data, fresh = base.data, type(base.data)(base.model)
    arrays = {}
    for name in dir(data):
        value = None if name.startswith("_") else getattr(data, name, None)
        if (
            isinstance(value, np.ndarray)
            and value.size
            and value.shape == getattr(fresh, name).shape
        ):
            arrays[name] = value
    return arrays


def restore_base(base: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of :func:`base_snapshot`."""
    if "declared" in state:
        base.restore(state["declared"])
    elif "mujoco" in state and (mujoco := _mujoco_of(base)) is not None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        values = np.ascontiguousarray(state["mujoco"].numpy(), dtype=np.float64)
        if values.shape != (mujoco.mj_stateSize(base.model, spec),):
            raise ValueError("the snapshot's MuJoCo state does not fit this model")
        mujoco.mj_setState(base.model, base.data, values, spec)
        derived = state.get("derived")
        if derived is None:  # snapshots of older farl versions: recompute what they lack
            mujoco.mj_forward(base.model, base.data)
            return
        arrays = _model_sized(base)
        if set(derived) != set(arrays):
            raise ValueError("the snapshot's MuJoCo data does not fit this model")
        for name, saved in derived.items():
            if saved.shape != arrays[name].shape:
                raise ValueError(f"the snapshot's MuJoCo {name} does not fit this model")
            arrays[name][...] = saved.numpy()
    else:
        raise ValueError("this environment cannot restore that snapshot")


def dimension_names(env: gym.Env) -> tuple[str, ...] | None:
    """Human names for an environment's action dimensions, where it has them."""
    base = env.unwrapped
    names = getattr(base, "action_names", None)
    if names is not None:
        return tuple(names)
    model = getattr(base, "model", None)
    if model is not None and hasattr(model, "nu"):  # MuJoCo: the actuators' names
        return tuple(model.actuator(i).name or f"actuator{i}" for i in range(model.nu))
    return None


def factorize(
    env: gym.Env,
    *,
    bins: int = 11,
    factorization: Factorization | None = None,
    radix: tuple[int, ...] | None = None,
) -> FactoredActions:
    """Wrap ``env`` so that it takes sub-action indices, labelled where possible."""
    names = dimension_names(env)
    space = env.action_space
    if names is not None and isinstance(space, spaces.Box) and len(names) != space.shape[0]:
        names = None
    if names is not None and is_hybrid(space) and len(names) != int(space.spaces[0].n):
        names = None
    codec = make_codec(space, bins=bins, factorization=factorization, radix=radix, names=names)
    value_names = getattr(env.unwrapped, "action_value_names", None)
    if isinstance(codec, MultiDiscreteCodec) and value_names is not None:
        codec = MultiDiscreteCodec(space, codec.space.factorization, names, tuple(value_names))
    return FactoredActions(env, codec)
