"""What both agents share: their device, building and acting with their policy, saving their
modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from farl_cli.config import FPPOConfig, FSACConfig
from farl_cli.distributions import IndependentCategorical
from farl_cli.errors import FarlError
from farl_cli.networks import FactoredPolicy, RunningNorm
from farl_cli.spaces import FactoredSpace

Greedy = Literal["mode", "mean"]
"""How a deterministic action is read from a policy: its mode, or each head's mean bin."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu`` or ``cuda``; refused when it is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FarlError(
            "--device cuda: this PyTorch sees no CUDA device (a CPU build, or no GPU); "
            "use --device cpu, or install a CUDA build of torch"
        )
    if name not in ("cpu", "cuda"):
        raise FarlError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def compiled(fn: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
    """``fn`` through ``torch.compile``; on CUDA also captured as a CUDA graph and replayed
    (``reduce-overhead``), each call marked as a new step so that the graph's outputs, which
    the next replay overwrites, are cloned before they are kept."""
    if device.type != "cuda":
        return torch.compile(fn)
    graph = torch.compile(fn, mode="reduce-overhead")

    def step(*args: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        out = graph(*args)
        if isinstance(out, dict):
            return {key: value.clone() for key, value in out.items()}
        return out.clone()

    return step


def check_positions(setting: str, space: FactoredSpace, values: int) -> None:
    """Refuse a head shaped by its values' positions (``setting``, as written in a preset)
    where a space's values have none or fewer than ``values`` per dimension."""
    if (
        space.factorization == "autoregressive"
        or not space.evenly_spaced
        or len(set(space.sizes)) != 1
        or space.sizes[0] < values
    ):
        raise FarlError(
            f"{setting} needs an independent factorization of evenly spaced values (a binned"
            f" Box action space), at least {values} per dimension; this one is"
            f" {space.factorization}, sizes {list(space.sizes)},"
            f" {'' if space.evenly_spaced else 'not '}evenly spaced"
        )


def policy_network(
    obs_dim: int, space: FactoredSpace, cfg: FPPOConfig | FSACConfig
) -> FactoredPolicy:
    """The agent's policy network, its heads shaped as ``cfg`` says where the space allows."""
    if cfg.policy_degree is not None:
        check_positions(f"agent.policy_degree: {cfg.policy_degree}", space, cfg.policy_degree + 1)
    if cfg.policy_ordinal:
        check_positions("agent.policy_ordinal: true", space, 2)
    return FactoredPolicy(
        obs_dim,
        space,
        cfg.hidden_sizes,
        cfg.activation,
        degree=cfg.policy_degree,
        ordinal=cfg.policy_ordinal,
    )


class PolicyActor:
    """``act``, observation normalization and module states for an agent with a policy."""

    cfg: FPPOConfig | FSACConfig
    policy: FactoredPolicy
    normalizer: RunningNorm
    device: torch.device = torch.device("cpu")
    # attributes (modules, optimizers) whose state_dict a checkpoint holds under their name
    stateful: tuple[str, ...] = ()

    def module_states(self) -> dict[str, Any]:
        """``state_dict()`` of every attribute named in ``stateful``."""
        return {name: getattr(self, name).state_dict() for name in self.stateful}

    def load_module_states(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`module_states`; optimizers keep their moments but take the
        configured learning rate, which a resumed run may change."""
        for name in self.stateful:
            target = getattr(self, name)
            target.load_state_dict(state[name])
            if isinstance(target, torch.optim.Optimizer):  # its state carries the old rate
                for group in target.param_groups:
                    group["lr"] = self.cfg.learning_rate

    def _obs(self, obs: np.ndarray | Tensor) -> Tensor:
        return self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=self.device))

    def _seen(self, obs: np.ndarray) -> Tensor:
        """Observations met while training: on the device (one copy), folded into the running
        statistics when normalizing (in their own precision), then normalized."""
        raw = torch.as_tensor(obs, device=self.device)
        if self.normalizer.enabled:
            self.normalizer.update(raw)
        return self.normalizer(raw.float())

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, deterministic: bool = False, greedy: Greedy = "mode"
    ) -> np.ndarray:
        """Joint actions ``[N, k]`` for a batch of observations; no side effects.

        Deterministic actions are the policy's mode, or with ``greedy="mean"`` (an
        independent policy) each head's bin nearest its mean."""
        dist = self.policy(self._obs(obs))
        if not deterministic:
            return dist.sample().cpu().numpy()
        if greedy == "mean":
            if not isinstance(dist, IndependentCategorical):
                raise FarlError("the mean bin needs an independent factorization")
            return dist.mean_value().cpu().numpy()
        return dist.mode().cpu().numpy()
