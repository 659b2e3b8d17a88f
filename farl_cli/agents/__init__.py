"""Agents built from (observation size, factored space, agent config)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from farl_cli.agents.common import Greedy
from farl_cli.config import FPPOConfig, FSACConfig, Preset
from farl_cli.errors import FarlError
from farl_cli.spaces import FactoredSpace


class Agent(Protocol):
    """What the training loop, evaluation and enjoy rely on, and nothing more."""

    metric_names: tuple[str, ...]
    updates: int  # learning steps taken so far

    def act(
        self, obs: np.ndarray, deterministic: bool = False, greedy: Greedy = "mode"
    ) -> np.ndarray:
        """Joint actions for a batch of observations, without side effects."""
        ...

    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Joint actions while training; the agent remembers what it needs."""
        ...

    def observe(
        self,
        next_obs: np.ndarray,
        final_obs: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> dict[str, Any] | None:
        """The environments' answer to the last ``explore``; metrics (numbers or 0-d tensors,
        read only when logged) when it learned."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        ...


def make_agent(
    preset: Preset, obs_dim: int, space: FactoredSpace, device: torch.device | None = None
) -> Agent:
    """The agent a preset asks for, on ``device`` (default: the CPU)."""
    if isinstance(preset.agent, FPPOConfig):
        from farl_cli.agents.fppo import FPPOAgent

        return FPPOAgent(
            obs_dim, space, preset.agent, preset.env.num_envs, device, preset.train.compile
        )
    if isinstance(preset.agent, FSACConfig):
        from farl_cli.agents.fsac import FSACAgent

        return FSACAgent(
            obs_dim,
            space,
            preset.agent,
            preset.env.num_envs,
            seed=preset.train.seed,
            save_buffer=preset.train.save_buffer,
            device=device,
            compile=preset.train.compile,
        )
    raise FarlError(f"{preset.name}: unknown agent.algo {preset.agent.algo!r}")
