"""Policy heads: teacher forcing agrees with head-by-head computation; normalizer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from farl_cli.networks import (
    AutoregressiveHeads,
    FactoredPolicy,
    PolynomialHeads,
    RunningNorm,
    mlp,
    ordinal_logits,
    polynomial_basis,
)
from farl_cli.spaces import FactoredSpace


def space(sizes: tuple[int, ...], factorization: str) -> FactoredSpace:
    return FactoredSpace(
        sizes,
        factorization,
        tuple(f"d{i}" for i in range(len(sizes))),
        tuple(tuple(str(j) for j in range(n)) for n in sizes),
    )


def test_teacher_forced_logits_equal_each_head_alone() -> None:
    torch.manual_seed(0)
    heads = AutoregressiveHeads(5, space((2, 3, 4), "autoregressive"), 7, "relu")
    emb = torch.randn(6, 5)
    actions = torch.tensor([[0, 1, 2], [1, 2, 3], [1, 0, 0], [0, 0, 1], [1, 1, 1], [0, 2, 3]])
    together = heads(emb, actions)
    for i in range(3):
        torch.testing.assert_close(together[:, i], heads.head(emb, actions, i))


def test_head_i_ignores_sub_actions_from_i_on_and_uses_those_before() -> None:
    torch.manual_seed(1)
    heads = AutoregressiveHeads(4, space((3, 3, 3), "autoregressive"), 8, "tanh")
    emb = torch.randn(1, 4)
    a, b = torch.tensor([[0, 0, 0]]), torch.tensor([[0, 2, 1]])
    la, lb = heads(emb, a), heads(emb, b)
    torch.testing.assert_close(la[:, :2], lb[:, :2])  # heads 0 and 1 see only a^0
    assert not torch.allclose(la[:, 2], lb[:, 2])


def test_policy_log_prob_sums_to_one_over_all_joint_actions() -> None:
    torch.manual_seed(2)
    for factorization in ("independent", "autoregressive"):
        policy = FactoredPolicy(3, space((2, 3), factorization), [16], "relu")
        joint = torch.tensor([[i, j] for i in range(2) for j in range(3)])
        obs = torch.randn(1, 3).expand(6, -1)
        total = policy(obs).log_prob(joint).exp().sum()
        torch.testing.assert_close(total, torch.tensor(1.0))


def test_running_norm_matches_numpy_over_batches() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    norm = RunningNorm(4)
    for chunk in np.array_split(data, 7):
        norm.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-4)
    out = norm(torch.as_tensor(data, dtype=torch.float32))
    np.testing.assert_allclose(out.mean(0).numpy(), 0, atol=1e-4)


def test_mlp_layer_norm_normalizes_each_hidden_layer_and_keeps_the_linear_weights() -> None:
    torch.manual_seed(0)
    plain = mlp(5, [8, 6], "relu", 1)
    torch.manual_seed(0)
    normed = mlp(5, [8, 6], "relu", 1, layer_norm=True)
    linears = [m for m in normed if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and sum(isinstance(m, torch.nn.LayerNorm) for m in normed) == 2
    linear_params = [p for m in linears for p in m.parameters()]
    for a, b in zip(plain.parameters(), linear_params, strict=True):
        torch.testing.assert_close(a, b)  # LayerNorm draws no random numbers
    x = torch.randn(32, 5) * 100
    pre = normed[1](normed[0](x))  # the first hidden layer, after its LayerNorm
    torch.testing.assert_close(pre.mean(-1), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(pre.var(-1, unbiased=False), torch.ones(32), atol=1e-3, rtol=0)
    # a hundredfold input moves the plain network's output far more than the normed one's
    assert (normed(x) - normed(x / 100)).abs().max() < (plain(x) - plain(x / 100)).abs().max()


def test_polynomial_basis_is_orthogonal_and_spans_the_polynomials_of_its_degree() -> None:
    basis = polynomial_basis(11, 3).double()  # [4, 11]
    torch.testing.assert_close(basis @ basis.T, torch.eye(4, dtype=torch.float64) * 11 / 4)
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    cubic = 2 - x + 0.5 * x**2 - 3 * x**3
    # a cubic is its own projection onto the basis; a quartic is not
    torch.testing.assert_close(cubic @ basis.T @ basis * 4 / 11, cubic)
    quartic = x**4
    assert not torch.allclose(quartic @ basis.T @ basis * 4 / 11, quartic)
    full = polynomial_basis(11, 10)  # degree n - 1: any values at all
    assert torch.linalg.matrix_rank(full) == 11


def test_polynomial_heads_need_evenly_spaced_values_of_one_size() -> None:
    even = FactoredSpace((5, 5), "independent", ("a", "b"), (tuple("01234"),) * 2, False, True)
    heads = PolynomialHeads(6, even, 1)
    out = heads(torch.randn(3, 6))
    assert out.shape == (3, 2, 5)
    torch.testing.assert_close(out.diff(n=2, dim=-1), torch.zeros(3, 2, 3))  # linear in the bin
    with pytest.raises(ValueError, match="evenly spaced"):
        PolynomialHeads(6, space((5, 5), "independent"), 1)
    with pytest.raises(ValueError, match=r"degree must be in 0\.\.4"):
        PolynomialHeads(6, even, 5)


def test_a_policy_of_degree_two_is_a_discretized_gaussian_over_its_bins() -> None:
    torch.manual_seed(3)
    values = (tuple("0123456"),) * 4
    even = FactoredSpace((7,) * 4, "independent", tuple("abcd"), values, False, True)
    policy = FactoredPolicy(5, even, [16], "relu", degree=2)
    policy.heads.linear.weight.data.mul_(300)  # past the near-uniform start
    probs = policy(torch.randn(8, 5)).probs.double().reshape(-1, 7)  # [rows, bins]
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)
    # each row's log-probabilities, fitted exactly by c0 + c1 x + c2 x^2
    vander = torch.stack([torch.ones_like(x), x, x**2], dim=1)
    coef = torch.linalg.lstsq(vander, probs.log().T).solution.T  # [rows, 3]
    torch.testing.assert_close(coef @ vander.T, probs.log())
    down = coef[:, 2] < 0
    assert 0 < int(down.sum()) < len(coef)  # both shapes occur
    # curved down: the normal density N(mu, sigma^2) at the bins, renormalized
    mu, var = -coef[down, 1] / (2 * coef[down, 2]), -1 / (2 * coef[down, 2])
    density = torch.exp(-((x - mu[:, None]) ** 2) / (2 * var[:, None]))
    torch.testing.assert_close(probs[down], density / density.sum(-1, keepdim=True))
    # curved up (a bowl): the most likely bin is an end one
    assert set(probs[~down].argmax(-1).tolist()) <= {0, 6}
    plain = FactoredPolicy(5, even, [16], "relu")
    assert sum(p.numel() for p in policy.parameters()) < sum(p.numel() for p in plain.parameters())
    with pytest.raises(ValueError, match="independent factorization"):
        FactoredPolicy(5, even.with_factorization("autoregressive"), [16], "relu", degree=2)


def test_ordinal_logits_match_their_sum_and_step_by_each_score() -> None:
    scores = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    logits = ordinal_logits(scores)
    p = torch.sigmoid(scores)
    for b, i, k in itertools.product(range(3), range(4), range(6)):
        expected = sum(math.log(p[b, i, j]) for j in range(k + 1)) + sum(
            math.log(1 - p[b, i, j]) for j in range(k + 1, 6)
        )
        assert math.isclose(float(logits[b, i, k]), expected, rel_tol=1e-9)
    # from value k to k + 1 the logit moves by the score of k + 1: log p - log(1 - p)
    torch.testing.assert_close(logits.diff(dim=-1), scores[..., 1:])
    # scores of zero (a new network's) give the uniform distribution
    flat = ordinal_logits(torch.zeros(2, 6))
    torch.testing.assert_close(flat, torch.full((2, 6), 6 * math.log(0.5)))


def test_an_ordinal_policy_applies_ordinal_logits_and_needs_evenly_spaced_values() -> None:
    torch.manual_seed(0)
    values = (tuple("01234"),) * 3
    even = FactoredSpace((5,) * 3, "independent", tuple("abc"), values, False, True)
    policy = FactoredPolicy(4, even, [8], "relu", ordinal=True)
    obs = torch.randn(5, 4)
    scores = policy.heads(policy.torso(obs))
    torch.testing.assert_close(policy(obs).logits, ordinal_logits(scores))
    with pytest.raises(ValueError, match="ordinal heads need"):
        FactoredPolicy(4, even.with_factorization("autoregressive"), [8], "relu", ordinal=True)
    uneven = FactoredSpace((5,) * 3, "independent", tuple("abc"), values, False, False)
    with pytest.raises(ValueError, match="ordinal heads need"):
        FactoredPolicy(4, uneven, [8], "relu", ordinal=True)
