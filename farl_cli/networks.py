"""Networks: MLP torso, independent and autoregressive policy heads, critics, normalizer.

Section 5.1 of the paper: a torso embeds the state; independent heads read the embedding
alone, autoregressive head i also reads an encoding of sub-actions 1..i-1 (here the one-hot
codes of the prefix, the later dimensions zeroed).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from farl_cli.distributions import (
    AutoregressiveCategorical,
    FactoredDistribution,
    IndependentCategorical,
)
from farl_cli.spaces import FactoredSpace

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(
    in_dim: int,
    hidden: list[int],
    activation: str,
    out_dim: int | None = None,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Linear layers with an activation after each hidden one; no activation on the output.

    With ``layer_norm`` each hidden layer's pre-activations are normalized (LayerNorm with
    its learned scale and shift) before the activation.
    """
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers.append(nn.Linear(last, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(ACTIVATIONS[activation]())
        last = h
    if out_dim is not None:
        layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def init_output(layer: nn.Linear, gain: float) -> None:
    """Orthogonal weights with a small gain, zero bias: near-uniform initial policies."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)


class RunningNorm(nn.Module):
    """Running mean and variance of observations (parallel Welford), saved with the model."""

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))
        self.clip = clip
        self.enabled = True

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``[B, dim]`` into the running statistics."""
        x = x.double().reshape(-1, self.mean.shape[0])
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta.pow(2) * self.count * b_count / total
        self.mean += delta * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: Tensor) -> Tensor:
        """Normalized, clipped observations (identity when disabled)."""
        if not self.enabled:
            return x
        y = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + 1e-8)
        return y.clamp(-self.clip, self.clip)


class IndependentHeads(nn.Module):
    """One linear layer giving every dimension's logits at once: ``[B, k, max_n]``."""

    def __init__(self, emb_dim: int, space: FactoredSpace) -> None:
        super().__init__()
        self.k, self.max_n = space.n_dims, space.max_size
        self.linear = nn.Linear(emb_dim, self.k * self.max_n)
        init_output(self.linear, 0.01)

    def forward(self, emb: Tensor) -> Tensor:
        """Padded logits of every dimension."""
        return self.linear(emb).view(-1, self.k, self.max_n)


def polynomial_basis(n: int, degree: int) -> Tensor:
    """``[degree + 1, n]``: polynomials of degree 0..``degree`` at n evenly spaced points,
    orthogonal over those points and scaled so that each point's squared norm is 1 on average
    (the scale of one free value per point)."""
    x = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    vander = torch.stack([x**p for p in range(degree + 1)], dim=1)  # [n, degree + 1]
    q, _ = torch.linalg.qr(vander)
    return (q * math.sqrt(n / (degree + 1))).T.float()


class PolynomialHeads(nn.Module):
    """Every dimension's outputs as a polynomial of ``degree`` in the value's position,
    ``[B, k, n]``: a linear layer gives ``degree + 1`` coefficients per dimension. For evenly
    spaced values (binned torques), so that what is learned about one bin reaches its
    neighbours; degree ``n - 1`` is as free as :class:`IndependentHeads`."""

    def __init__(self, emb_dim: int, space: FactoredSpace, degree: int) -> None:
        super().__init__()
        n = space.max_size
        if not space.evenly_spaced or len(set(space.sizes)) != 1:
            raise ValueError("polynomial heads need evenly spaced values, as many per dimension")
        if not 0 <= degree < n:
            raise ValueError(f"the degree must be in 0..{n - 1} for {n} values, got {degree}")
        self.k, self.coefficients = space.n_dims, degree + 1
        self.linear = nn.Linear(emb_dim, self.k * self.coefficients)
        init_output(self.linear, 0.01)
        self.register_buffer("basis", polynomial_basis(n, degree))

    def forward(self, emb: Tensor) -> Tensor:
        """Outputs of every value of every dimension."""
        return torch.einsum(
            "bkc,cn->bkn", self.linear(emb).view(-1, self.k, self.coefficients), self.basis
        )


def ordinal_logits(scores: Tensor) -> Tensor:
    """Tang and Agrawal's (2020) ordinal logits over ordered values, ``[..., n]``: with
    ``p_j = sigmoid(s_j)``, value k scores ``sum_{j <= k} log p_j + sum_{j > k} log(1 - p_j)``,
    so that choosing value k also says "at least" to every value below it."""
    up, down = nn.functional.logsigmoid(scores), nn.functional.logsigmoid(-scores)
    return up.cumsum(-1) + down.sum(-1, keepdim=True) - down.cumsum(-1)


class AutoregressiveHeads(nn.Module):
    """k heads of one hidden layer each; head i reads the embedding and the prefix a[:, :i].

    The weights of all heads are stacked so that teacher-forced logits for every head come
    from two batched matrix products, with no loop over dimensions.
    """

    def __init__(self, emb_dim: int, space: FactoredSpace, hidden: int, activation: str) -> None:
        super().__init__()
        self.k, self.max_n = space.n_dims, space.max_size
        sizes = torch.tensor(space.sizes)
        offsets = torch.cumsum(sizes, 0) - sizes
        self.register_buffer("offsets", offsets)  # where dimension j's one-hot code starts
        self.code_dim = int(sizes.sum())
        # prefix_mask[i, c] is 1 when code position c belongs to a dimension j < i
        dim_of_code = torch.repeat_interleave(torch.arange(self.k), sizes)
        self.register_buffer(
            "prefix_mask", (dim_of_code[None, :] < torch.arange(self.k)[:, None]).float()
        )
        in_dim = emb_dim + self.code_dim
        bound1, bound2 = 1 / math.sqrt(in_dim), 1 / math.sqrt(hidden)
        self.w1 = nn.Parameter(torch.empty(self.k, in_dim, hidden).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.zeros(self.k, hidden))
        self.w2 = nn.Parameter(torch.empty(self.k, hidden, self.max_n).uniform_(-bound2, bound2))
        self.w2.data.mul_(0.01)  # near-uniform initial policy, as for the independent head
        self.b2 = nn.Parameter(torch.zeros(self.k, self.max_n))
        self.act = ACTIVATIONS[activation]()

    def codes(self, actions: Tensor) -> Tensor:
        """One-hot codes of every sub-action, concatenated: ``[B, sum n_i]``."""
        out = torch.zeros(actions.shape[0], self.code_dim, device=actions.device)
        out.scatter_(1, actions.long() + self.offsets, 1.0)
        return out

    def forward(self, emb: Tensor, actions: Tensor) -> Tensor:
        """Teacher-forced logits of every head, ``[B, k, max_n]``."""
        prefix = self.codes(actions)[:, None, :] * self.prefix_mask  # [B, k, code]
        x = torch.cat([emb[:, None, :].expand(-1, self.k, -1), prefix], dim=-1)
        h = self.act(torch.einsum("bki,kih->bkh", x, self.w1) + self.b1)
        return torch.einsum("bkh,khn->bkn", h, self.w2) + self.b2

    def head(self, emb: Tensor, actions: Tensor, i: int) -> Tensor:
        """Logits of head i alone, ``[B, max_n]``, for sequential sampling."""
        prefix = self.codes(actions) * self.prefix_mask[i]
        x = torch.cat([emb, prefix], dim=-1)
        h = self.act(x @ self.w1[i] + self.b1[i])
        return h @ self.w2[i] + self.b2[i]


class FactoredHeadsNet(nn.Module):
    """A torso on the state, then one output per value of every dimension, ``[B, k, max_n]``:
    from the state alone (independent) or also from the prefix ``a^1..a^{i-1}``
    (autoregressive, teacher-forced). The policy's logits and the sub-Q values share it.

    With ``degree`` d (independent, evenly spaced values) the outputs are polynomials of
    degree d in the value's position (:class:`PolynomialHeads`): for a policy's logits, d = 2
    makes each head a discretized Gaussian over its bins (or, curved up, a bowl). With
    ``ordinal`` (the same spaces) a policy reads them as Tang and Agrawal's ordinal scores.
    """

    def __init__(
        self,
        obs_dim: int,
        space: FactoredSpace,
        hidden: list[int],
        activation: str,
        layer_norm: bool = False,
        degree: int | None = None,
        ordinal: bool = False,
    ):
        super().__init__()
        self.space = space
        self.register_buffer("mask", torch.from_numpy(space.mask()))
        self.dense = bool(space.mask().all())  # known here, so no distribution asks the device
        self.torso = mlp(obs_dim, hidden, activation, layer_norm=layer_norm)
        emb_dim = hidden[-1] if hidden else obs_dim
        self.autoregressive = space.factorization == "autoregressive"
        self.heads: nn.Module
        if self.autoregressive:
            if degree is not None:
                raise ValueError("polynomial heads need an independent factorization")
            self.heads = AutoregressiveHeads(emb_dim, space, emb_dim, activation)
        elif degree is not None:
            self.heads = PolynomialHeads(emb_dim, space, degree)
        else:
            self.heads = IndependentHeads(emb_dim, space)
        if ordinal and (
            self.autoregressive or not space.evenly_spaced or len(set(space.sizes)) != 1
        ):
            raise ValueError(
                "ordinal heads need an independent factorization of evenly spaced values,"
                " as many per dimension"
            )
        self.ordinal = ordinal  # the policy reads its outputs as ordinal scores

    def outputs(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """``[B, k, max_n]``; autoregressive outputs need the actions whose prefixes they read."""
        emb = self.torso(obs)
        if not self.autoregressive:
            return self.heads(emb)
        if actions is None:
            raise ValueError("autoregressive outputs need the action prefixes")
        return self.heads(emb, actions)


class FactoredPolicy(FactoredHeadsNet):
    """``obs -> FactoredDistribution``: torso then independent or autoregressive heads; with
    ``ordinal`` the heads' outputs are scores that :func:`ordinal_logits` turns into logits."""

    def forward(self, obs: Tensor) -> FactoredDistribution:
        """The policy's distribution over joint actions for a batch of observations."""
        emb = self.torso(obs)
        if not self.autoregressive:
            logits = self.heads(emb)
            if self.ordinal:
                logits = ordinal_logits(logits)
            return IndependentCategorical(logits, self.mask, self.dense)
        heads = self.heads
        return AutoregressiveCategorical(
            lambda a: heads(emb, a),
            self.mask,
            batch_size=obs.shape[0],
            step_fn=lambda a, i: heads.head(emb, a, i),
            dense=self.dense,
        )


class ValueNet(nn.Module):
    """``V(s)``: the state alone, whatever the factorization (section 5.2)."""

    def __init__(self, obs_dim: int, hidden: list[int], activation: str) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, activation, 1)
        init_output(self.net[-1], 1.0)

    def forward(self, obs: Tensor) -> Tensor:
        """State values, ``[B]``."""
        return self.net(obs).squeeze(-1)


class SubQNet(FactoredHeadsNet):
    """Sub-Q values ``Q^i(., .)`` for every dimension at once, ``[B, k, max_n]`` (section 5.3).

    Independent: ``Q^i(s, .)`` from the state alone. Autoregressive: ``Q^i(u^{i-1}, .)``, the
    state plus the one-hot prefix ``a^1..a^{i-1}``, with the same stacked heads as the
    policy so that all intermediate states are evaluated in one pass (teacher forcing).

    With ``pair_rank`` r (independent only, the pairwise critic) each value of every
    dimension also gets an embedding ``e_i(s, a^i)`` in R^r, from a second linear layer on the
    same torso; the output is then ``[B, k, max_n, 1 + r]``, the sub-Q value first.

    With ``degree`` d (independent, evenly spaced values) each sub-Q is a polynomial of degree
    d in the value's position (:class:`PolynomialHeads`) instead of one free value per value.
    """

    def __init__(
        self,
        obs_dim: int,
        space: FactoredSpace,
        hidden: list[int],
        activation: str,
        layer_norm: bool = False,
        pair_rank: int = 0,
        degree: int | None = None,
    ) -> None:
        super().__init__(obs_dim, space, hidden, activation, layer_norm)
        self.pair_rank = pair_rank
        emb_dim = hidden[-1] if hidden else obs_dim
        if degree is not None:
            if self.autoregressive:
                raise ValueError("polynomial sub-Qs need an independent factorization")
            self.heads = PolynomialHeads(emb_dim, space, degree)
        if pair_rank:
            if self.autoregressive:
                raise ValueError("pair embeddings need an independent factorization")
            self.pairs = nn.Linear(emb_dim, space.n_dims * space.max_size * pair_rank)
            # small, not tiny: the pair terms start near zero, yet each embedding's gradient
            # (the others' embeddings) is not so small that they stay there
            init_output(self.pairs, 0.1)

    def forward(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """Sub-Q values of every value of every dimension (and their pair embeddings)."""
        if not self.pair_rank:
            return self.outputs(obs, actions)
        emb = self.torso(obs)
        q = self.heads(emb)
        e = self.pairs(emb).view(*q.shape, self.pair_rank)
        return torch.cat([q.unsqueeze(-1), e], dim=-1)


class UpQNet(nn.Module):
    """``Q(s, a)`` on full joint actions, one number each: the up Q-value ``Q^U`` of section
    5.3, and the joint critic of an independent agent (``agent.critic: joint``).

    The action enters as the one-hot codes of its sub-actions, or, with ``ordered`` (evenly
    spaced values, a binned Box), as each sub-action's position scaled to [-1, 1]: an affine
    image of the torques themselves, so the network sees neighbouring bins as neighbours, as
    a continuous critic does.
    """

    def __init__(
        self,
        obs_dim: int,
        space: FactoredSpace,
        hidden: list[int],
        activation: str,
        layer_norm: bool = False,
        ordered: bool = False,
    ):
        super().__init__()
        sizes = torch.tensor(space.sizes)
        self.ordered = ordered
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        # not saved: checkpoints written before it existed load as they are
        scale = 2.0 / (sizes - 1).clamp(min=1).float()
        self.register_buffer("scale", scale, persistent=False)
        self.code_dim = space.n_dims if ordered else int(sizes.sum())
        self.net = mlp(obs_dim + self.code_dim, hidden, activation, 1, layer_norm)

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``Q(s, a)``, ``[B]``."""
        if self.ordered:
            codes = actions.float() * self.scale - 1.0
        else:
            codes = torch.zeros(actions.shape[0], self.code_dim, device=obs.device)
            codes.scatter_(1, actions.long() + self.offsets, 1.0)
        return self.net(torch.cat([obs, codes], dim=-1)).squeeze(-1)
