"""What both agents share: acting with their policy, and saving their modules' states."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from farl_cli.networks import FactoredPolicy, RunningNorm


class PolicyActor:
    """``act``, observation normalization and module states for an agent with a policy."""

    policy: FactoredPolicy
    normalizer: RunningNorm
    # attributes (modules, optimizers) whose state_dict a checkpoint holds under their name
    stateful: tuple[str, ...] = ()

    def module_states(self) -> dict[str, Any]:
        """``state_dict()`` of every attribute named in ``stateful``."""
        return {name: getattr(self, name).state_dict() for name in self.stateful}

    def load_module_states(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`module_states`."""
        for name in self.stateful:
            getattr(self, name).load_state_dict(state[name])

    def _obs(self, obs: np.ndarray | Tensor) -> Tensor:
        return self.normalizer(torch.as_tensor(obs, dtype=torch.float32))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Joint actions ``[N, k]`` for a batch of observations; no side effects."""
        dist = self.policy(self._obs(obs))
        return (dist.mode() if deterministic else dist.sample()).numpy()
