"""Factored categorical distributions: the mathematics of section 4 of the paper.

Every distribution follows one interface, documented here once. All of it is batched; joint
actions are integer tensors ``[batch, k]`` of sub-action indices.

- ``sample()``: a joint action per batch row.
- ``log_prob(actions)``: ``log pi(a|s) = sum_i log pi^i(a^i | ...)``, shape ``[batch]``.
- ``entropy()``: the entropy of the joint distribution (independent: exact, Proposition 1.1;
  autoregressive: the unbiased estimator of Proposition 1.2), shape ``[batch]``.
- ``kl(other)``: ``KL[self || other]`` (independent: exact, Proposition 2.1; autoregressive:
  the estimator of Proposition 2.2, one sequence drawn from ``self`` and fed to both).
- ``mode()``: the most likely joint action (autoregressive: greedy, head by head).
- ``conditionals(actions)``: the per-dimension distributions along a given joint action, as
  an :class:`IndependentCategorical` (for an independent distribution, itself). Losses that
  need per-dimension terms (PPO's KL to a stored policy, SAC's inner products) use it.

Sub-action sizes may differ; logits are padded to ``max_n`` and a boolean mask ``[k, max_n]``
marks the values that exist. Padded values get probability zero and contribute nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

LogitsFn = Callable[[Tensor], Tensor]
"""Teacher-forced logits: ``actions [B, k] -> logits [B, k, max_n]``, row i using a[:, :i]."""

StepFn = Callable[[Tensor, int], Tensor]
"""Logits of head i alone: ``(actions [B, k], i) -> logits [B, max_n]``, using a[:, :i]."""


def masked_log_softmax(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Log-probabilities per dimension, ``-inf`` where the value does not exist.

    ``mask=None`` means every dimension has ``max_n`` values: nothing to mask.
    """
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    # Written out because torch's log_softmax over a short last dimension (11 bins) is
    # about 3 times slower on CPU. The max is a constant for the gradient, hence detached.
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def _gumbel_argmax(log_probs: Tensor) -> Tensor:
    # argmax(log p + Gumbel) samples from p; -log(-log U) is a standard Gumbel variable
    # (drawn from uniforms: torch's exponential_ is 4 times slower on CPU).
    uniform = torch.rand_like(log_probs).clamp_(min=torch.finfo(log_probs.dtype).tiny)
    return (log_probs - (-uniform.log()).log()).argmax(dim=-1)


class FactoredDistribution(ABC):
    """The interface every factored distribution offers (see the module docstring)."""

    mask: Tensor

    @abstractmethod
    def sample(self) -> Tensor:
        """A joint action ``[batch, k]`` per row."""

    @abstractmethod
    def log_prob(self, actions: Tensor) -> Tensor:
        """Joint log-probability of given actions, ``[batch]``."""

    @abstractmethod
    def entropy(self) -> Tensor:
        """Entropy of the joint distribution (or its unbiased estimate), ``[batch]``."""

    @abstractmethod
    def kl(self, other: FactoredDistribution) -> Tensor:
        """``KL[self || other]`` (or its unbiased estimate), ``[batch]``."""

    @abstractmethod
    def mode(self) -> Tensor:
        """The most likely joint action ``[batch, k]``."""

    @abstractmethod
    def conditionals(self, actions: Tensor) -> IndependentCategorical:
        """Per-dimension distributions along the given joint actions."""


class IndependentCategorical(FactoredDistribution):
    """``pi(a|s) = prod_i pi^i(a^i|s)``: one categorical per dimension, all in one tensor."""

    def __init__(self, logits: Tensor, mask: Tensor, dense: bool | None = None) -> None:
        """``dense``: whether every dimension has ``max_n`` values (the mask is all true);
        read from the mask when not given, which waits for the device."""
        if logits.dim() != 3 or logits.shape[-2:] != mask.shape:
            raise ValueError(
                f"logits must be [batch, k, max_n] matching mask {tuple(mask.shape)}, "
                f"got {tuple(logits.shape)}"
            )
        self.mask = mask
        self.logits = logits
        # a space whose dimensions all have max_n values needs no masking (MuJoCo's bins)
        if dense is None:
            dense = bool(mask.all())
        padded = None if dense else mask
        self.log_probs = masked_log_softmax(logits, padded)  # [B, k, max_n], -inf when padded
        self.probs = self.log_probs.exp()  # exactly 0 when padded
        # log p with padded entries at 0, so that p * log p is 0 there instead of nan: the
        # form inner products with the probabilities (entropy, KL, SAC's eq. 6) need
        self.log_probs0 = (
            self.log_probs if padded is None else self.log_probs.masked_fill(~padded, 0.0)
        )

    def select(self, index: Tensor) -> IndependentCategorical:
        """The rows ``index`` of the batch, without recomputing anything."""
        out = object.__new__(IndependentCategorical)
        out.mask = self.mask
        out.logits = self.logits[index]
        out.log_probs = self.log_probs[index]
        out.probs = self.probs[index]
        out.log_probs0 = self.log_probs0[index]
        return out

    def conditionals(self, actions: Tensor) -> IndependentCategorical:
        """The per-dimension distributions; for a product distribution, itself."""
        return self

    def sample(self) -> Tensor:
        """Sample every dimension in parallel."""
        return _gumbel_argmax(self.log_probs.detach())

    def log_prob_dims(self, actions: Tensor) -> Tensor:
        """``log pi^i(a^i|s)`` per dimension, ``[batch, k]``."""
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Sum of the per-dimension log-probabilities."""
        return self.log_prob_dims(actions).sum(-1)

    def entropy_dims(self) -> Tensor:
        """``H(pi^i(.|s))`` per dimension, ``[batch, k]``."""
        return -(self.probs * self.log_probs0).sum(-1)

    def entropy(self) -> Tensor:
        """Proposition 1.1: the joint entropy is the sum of the sub-entropies."""
        return self.entropy_dims().sum(-1)

    def kl_dims(self, other: IndependentCategorical) -> Tensor:
        """``KL[pi^i || mu^i]`` per dimension, ``[batch, k]``."""
        return (self.probs * (self.log_probs0 - other.log_probs0)).sum(-1)

    def kl(self, other: FactoredDistribution) -> Tensor:
        """Proposition 2.1: the joint KL is the sum of the sub-KLs."""
        if not isinstance(other, IndependentCategorical):
            raise TypeError("KL between an independent and a non-independent distribution")
        return self.kl_dims(other).sum(-1)

    def mode(self) -> Tensor:
        """Per-dimension argmax, which is the joint mode for a product distribution."""
        return self.log_probs.argmax(-1)

    def mean_value(self) -> Tensor:
        """Per dimension, the value nearest the distribution's mean index,
        ``round(sum_j j pi^i(j))``: for evenly spaced values (binned torques) the bin nearest
        the mean torque, as continuous SAC acts greedily with its Gaussian's mean."""
        index = torch.arange(self.probs.shape[-1], device=self.probs.device)
        return (self.probs * index).sum(-1).round().long()


class AutoregressiveCategorical(FactoredDistribution):
    """``pi(a|s) = prod_i pi^i(a^i | u^{i-1})`` with ``u^{i-1} = (s, a^1..a^{i-1})``.

    ``logits_fn`` gives every head's logits in one batched pass when fed a whole action
    tensor (teacher forcing: head i sees only ``a[:, :i]``). ``step_fn``, when given,
    computes one head alone for sequential sampling; otherwise ``logits_fn`` is used.
    """

    def __init__(
        self,
        logits_fn: LogitsFn,
        mask: Tensor,
        batch_size: int,
        step_fn: StepFn | None = None,
        dense: bool | None = None,
    ) -> None:
        self.mask = mask
        self.dense = dense
        self.logits_fn = logits_fn
        self.step_fn: StepFn = step_fn or (lambda a, i: logits_fn(a)[:, i])
        self.batch_size = batch_size
        self._cached: tuple[Tensor, Tensor] | None = None  # (sampled actions, their logits)

    def _sequential(self, greedy: bool) -> tuple[Tensor, Tensor]:
        k, _max_n = self.mask.shape
        actions = torch.zeros(self.batch_size, k, dtype=torch.long, device=self.mask.device)
        logits = []
        for i in range(k):  # sequential by nature: head i needs a^1..a^{i-1}
            step_logits = self.step_fn(actions, i)
            log_p = masked_log_softmax(step_logits.detach(), self.mask[i])
            actions[:, i] = log_p.argmax(-1) if greedy else _gumbel_argmax(log_p)
            logits.append(step_logits)
        return actions, torch.stack(logits, dim=1)

    def sample(self) -> Tensor:
        """Sample head by head, each conditioned on the sub-actions already chosen."""
        actions, logits = self._sequential(greedy=False)
        self._cached = (actions, logits)
        return actions

    def conditionals(self, actions: Tensor) -> IndependentCategorical:
        """The per-head conditionals ``pi^i(.|u^{i-1})`` along a given action sequence."""
        if self._cached is not None and actions is self._cached[0]:
            logits = self._cached[1]
        else:
            logits = self.logits_fn(actions.long())
        return IndependentCategorical(logits, self.mask, self.dense)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact joint log-probability, every head fed its true prefix in one pass."""
        return self.conditionals(actions).log_prob(actions)

    def entropy(self, actions: Tensor | None = None) -> Tensor:
        """Proposition 1.2: ``sum_i H(pi^i(.|u^{i-1}))`` along a sequence drawn from pi.

        Unbiased only when ``actions`` were sampled from this very distribution; by default
        a fresh sequence is sampled.
        """
        seq = self.sample() if actions is None else actions
        return self.conditionals(seq).entropy()

    def kl(self, other: FactoredDistribution, actions: Tensor | None = None) -> Tensor:
        """Proposition 2.2: ``sum_i KL[pi^i || mu^i]`` along one sequence drawn from self.

        The same sequence conditions both policies' heads.
        """
        if not isinstance(other, AutoregressiveCategorical):
            raise TypeError("KL between an autoregressive and a non-autoregressive distribution")
        seq = self.sample() if actions is None else actions
        return self.conditionals(seq).kl(other.conditionals(seq))

    def mode(self) -> Tensor:
        """Greedy decoding: the argmax of each head given the argmaxes before it."""
        return self._sequential(greedy=True)[0]
