"""Rollout buffer for FPPO and the GAE computation it feeds; replay buffer for FSAC."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over ``[T, N]`` tensors; returns (advantages, returns).

    ``next_values[t]`` is ``V(s_{t+1})`` of the true next state: the final observation of an
    episode cut by truncation, whose value is bootstrapped. A termination bootstraps nothing.
    ``episode_end`` (terminated or truncated) stops the advantage from flowing across the
    boundary into the next episode's first step.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    not_terminal = 1.0 - terminated.float()
    carry = 1.0 - episode_end.float()
    for t in reversed(range(steps)):
        delta = rewards[t] + gamma * next_values[t] * not_terminal[t] - values[t]
        last = delta + gamma * lam * carry[t] * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class Rollout:
    """One rollout, ``[T, N, ...]`` tensors (T steps of N environments)."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    logits: Tensor  # per-head logits along the sampled sequence, as the policy was then
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    episode_end: Tensor
    truncated_values: Tensor  # V(final observation) where an episode was truncated, else 0

    def flat(self) -> Rollout:
        """The same data with T and N merged into one batch dimension."""
        return Rollout(**{f.name: getattr(self, f.name).flatten(0, 1) for f in fields(self)})


class RolloutBuffer:
    """Preallocated storage for one rollout of ``steps`` x ``num_envs`` transitions."""

    def __init__(
        self,
        steps: int,
        num_envs: int,
        obs_dim: int,
        k: int,
        max_n: int,
        device: torch.device | None = None,
    ) -> None:
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(steps, num_envs, *shape, dtype=dtype, device=device)

        self.data = Rollout(
            obs=z(obs_dim),
            actions=z(k, dtype=torch.long),
            log_probs=z(),
            logits=z(k, max_n),
            values=z(),
            rewards=z(),
            terminated=z(dtype=torch.bool),
            episode_end=z(dtype=torch.bool),
            truncated_values=z(),
        )
        self.steps = steps
        self.t = 0

    @property
    def full(self) -> bool:
        """True when every step of the rollout is written."""
        return self.t >= self.steps

    def add_action(
        self, obs: Tensor, actions: Tensor, log_probs: Tensor, logits: Tensor, values: Tensor
    ) -> None:
        """Write what the policy saw and chose at step ``t``."""
        d, t = self.data, self.t
        d.obs[t], d.actions[t], d.log_probs[t], d.logits[t], d.values[t] = (
            obs,
            actions,
            log_probs,
            logits,
            values,
        )

    def add_outcome(
        self, rewards: Tensor, terminated: Tensor, episode_end: Tensor, truncated_values: Tensor
    ) -> None:
        """Write what the environments answered at step ``t``, then move to ``t + 1``."""
        d, t = self.data, self.t
        d.rewards[t], d.terminated[t], d.episode_end[t], d.truncated_values[t] = (
            rewards,
            terminated,
            episode_end,
            truncated_values,
        )
        self.t += 1

    def next_values(self, last_values: Tensor) -> Tensor:
        """``V(s_{t+1})`` for every step: the next step's value, the final observation's
        value where an episode was truncated, ``last_values`` after the last step."""
        d = self.data
        nxt = torch.cat([d.values[1:], last_values[None]], dim=0)
        truncated = d.episode_end & ~d.terminated
        return torch.where(truncated, d.truncated_values, nxt)

    def reset(self) -> None:
        """Start a new rollout in the same storage."""
        self.t = 0

    def state_dict(self) -> dict[str, Any]:
        """The steps written so far: a run stopped mid-rollout resumes with them."""
        return {
            "t": self.t,
            **{
                f.name: getattr(self.data, f.name)[: self.t].to("cpu", copy=True)
                for f in fields(self.data)
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; shapes are checked."""
        t = state["t"]
        if not isinstance(t, int) or not 0 <= t <= self.steps:
            raise ValueError(f"rollout position {t!r} outside 0..{self.steps}")
        for f in fields(self.data):
            target, value = getattr(self.data, f.name), state[f.name]
            if not isinstance(value, Tensor) or value.shape != target[:t].shape:
                raise ValueError(f"rollout.{f.name} does not fit the rollout buffer")
            target[:t] = value
        self.t = t


class ReplayBuffer:
    """Preallocated circular replay memory on the agent's device; sub-actions stored as small
    integers.

    The true next observation is stored (an episode's final observation when it ended), and
    only termination, not truncation, marks a transition as terminal. Minibatches are
    gathered where the memory lives; only their indices come from the host's generator.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        sizes: tuple[int, ...],
        seed: int,
        device: torch.device | None = None,
    ) -> None:
        action_dtype = torch.uint8 if max(sizes) <= 256 else torch.int16
        self.capacity = capacity
        self.device = device or torch.device("cpu")

        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(capacity, *shape, dtype=dtype, device=self.device)

        self.obs, self.next_obs = z(obs_dim), z(obs_dim)
        self.actions = z(len(sizes), dtype=action_dtype)
        self.rewards = z()
        self.terminated = z(dtype=torch.bool)
        self.size = 0
        self.pos = 0
        self.rng = np.random.default_rng(seed)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Store one transition per environment (arrays with a leading ``num_envs`` axis)."""
        idx = torch.from_numpy((self.pos + np.arange(len(rewards))) % self.capacity)
        idx = idx.to(self.device)

        def put(store: Tensor, values: np.ndarray) -> None:
            store[idx] = torch.as_tensor(values, device=self.device).to(store.dtype)

        put(self.obs, obs)
        put(self.next_obs, next_obs)
        put(self.actions, actions)
        put(self.rewards, rewards)
        put(self.terminated, terminated)
        self.pos = int((self.pos + len(rewards)) % self.capacity)
        self.size = min(self.size + len(rewards), self.capacity)

    def sample(self, batch_size: int) -> dict[str, Tensor]:
        """A uniform minibatch as tensors on the buffer's device."""
        idx = torch.from_numpy(self.rng.integers(0, self.size, size=batch_size))
        idx = idx.to(self.device)
        return {
            "obs": self.obs[idx],
            "actions": self.actions[idx].long(),
            "rewards": self.rewards[idx],
            "next_obs": self.next_obs[idx],
            "terminated": self.terminated[idx],
        }

    def state_dict(self, include_data: bool) -> dict[str, Any]:
        """Position and generator always; the stored transitions when asked (as tensors)."""
        state: dict[str, Any] = {
            "size": self.size,
            "pos": self.pos,
            "rng": self.rng.bit_generator.state,
            "has_data": include_data,
        }
        if include_data:
            n = self.size
            state.update(
                obs=self.obs[:n].to("cpu", copy=True),
                next_obs=self.next_obs[:n].to("cpu", copy=True),
                actions=self.actions[:n].to("cpu", torch.int16, copy=True),
                rewards=self.rewards[:n].to("cpu", copy=True),
                terminated=self.terminated[:n].to("cpu", copy=True),
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; without saved transitions the buffer starts empty again."""
        self.rng.bit_generator.state = state["rng"]
        if not state["has_data"]:
            self.size = self.pos = 0
            return
        n = int(state["size"])
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            store = getattr(self, name)
            store[:n] = state[name].to(self.device, store.dtype)
        self.size, self.pos = n, int(state["pos"])
