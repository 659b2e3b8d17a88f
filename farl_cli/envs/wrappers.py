"""Wrappers that do one thing each: factor the action space."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

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
