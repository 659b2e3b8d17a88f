"""What both agents share: turning observations into actions with their policy."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from farl_cli.networks import FactoredPolicy, RunningNorm


class PolicyActor:
    """``act`` and observation normalization for an agent with a factored policy."""

    policy: FactoredPolicy
    normalizer: RunningNorm

    def _obs(self, obs: np.ndarray | Tensor) -> Tensor:
        return self.normalizer(torch.as_tensor(obs, dtype=torch.float32))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Joint actions ``[N, k]`` for a batch of observations; no side effects."""
        dist = self.policy(self._obs(obs))
        return (dist.mode() if deterministic else dist.sample()).numpy()
