"""Factored distributions against brute force: every joint action of small spaces enumerated."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from farl_cli.distributions import (
    AutoregressiveCategorical,
    IndependentCategorical,
    masked_log_softmax,
)

SIZES = (2, 3, 4)
MAX_N = max(SIZES)
ALL_ACTIONS = torch.tensor(list(itertools.product(*[range(n) for n in SIZES])))  # [24, 3]


def make_mask(sizes: tuple[int, ...] = SIZES) -> torch.Tensor:
    mask = torch.zeros(len(sizes), max(sizes), dtype=torch.bool)
    for i, n in enumerate(sizes):
        mask[i, :n] = True
    return mask


MASK = make_mask()


def random_logits(batch: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, len(SIZES), MAX_N, generator=g, dtype=torch.float64) * scale


class TablePolicy:
    """An autoregressive policy given by arbitrary tables: head i's logits for every prefix.

    ``tables[i]`` has shape ``[batch, n_1, ..., n_{i-1}, max_n]``: any conditional dependence
    at all, different for every batch row (state).
    """

    def __init__(self, batch: int, seed: int, scale: float = 2.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.batch = batch
        self.tables = [
            torch.randn(batch, *SIZES[:i], MAX_N, generator=g, dtype=torch.float64) * scale
            for i in range(len(SIZES))
        ]

    def head(self, actions: torch.Tensor, i: int) -> torch.Tensor:
        rows = torch.arange(actions.shape[0]) % self.batch
        index = (rows, *(actions[:, j] for j in range(i)))
        return self.tables[i][index]

    def logits(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.head(actions, i) for i in range(len(SIZES))], dim=1)

    def dist(self, batch: int | None = None, step: bool = True) -> AutoregressiveCategorical:
        return AutoregressiveCategorical(
            self.logits, MASK, batch or self.batch, self.head if step else None
        )

    def joint_log_probs(self) -> torch.Tensor:
        """Brute force, plain loops: ``[batch, 24]`` joint log-probabilities by the chain rule."""
        out = torch.zeros(self.batch, len(ALL_ACTIONS), dtype=torch.float64)
        for b in range(self.batch):
            for col, a in enumerate(ALL_ACTIONS.tolist()):
                total = 0.0
                for i in range(len(SIZES)):
                    logits = self.tables[i][(b, *a[:i])][: SIZES[i]]
                    total += torch.log_softmax(logits, -1)[a[i]].item()
                out[b, col] = total
        return out


def independent_joint_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Brute force for a product distribution: ``[batch, 24]``."""
    out = torch.zeros(logits.shape[0], len(ALL_ACTIONS), dtype=torch.float64)
    for col, a in enumerate(ALL_ACTIONS.tolist()):
        for i, ai in enumerate(a):
            out[:, col] += torch.log_softmax(logits[:, i, : SIZES[i]], -1)[:, ai]
    return out


def joint_entropy(logp: torch.Tensor) -> torch.Tensor:
    return -(logp.exp() * logp).sum(-1)


def joint_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    return (logp.exp() * (logp - logq)).sum(-1)


# ---------------------------------------------------------------- independent


def test_independent_log_prob_matches_enumeration_and_sums_to_one() -> None:
    logits = random_logits(5, seed=0)
    d = IndependentCategorical(logits, MASK)
    brute = independent_joint_log_probs(logits)
    for col, a in enumerate(ALL_ACTIONS):
        lp = d.log_prob(a.expand(5, -1))
        torch.testing.assert_close(lp, brute[:, col], rtol=0, atol=1e-12)
    torch.testing.assert_close(brute.exp().sum(-1), torch.ones(5, dtype=torch.float64))


def test_independent_entropy_equals_joint_entropy() -> None:
    logits = random_logits(7, seed=1)
    d = IndependentCategorical(logits, MASK)
    brute = joint_entropy(independent_joint_log_probs(logits))
    torch.testing.assert_close(d.entropy(), brute, rtol=0, atol=1e-12)


def test_independent_kl_equals_joint_kl() -> None:
    lp, lq = random_logits(7, seed=2), random_logits(7, seed=3)
    p, q = IndependentCategorical(lp, MASK), IndependentCategorical(lq, MASK)
    brute = joint_kl(independent_joint_log_probs(lp), independent_joint_log_probs(lq))
    torch.testing.assert_close(p.kl(q), brute, rtol=0, atol=1e-12)
    torch.testing.assert_close(p.kl(p), torch.zeros(7, dtype=torch.float64), rtol=0, atol=1e-12)


def test_padded_values_get_no_mass_and_are_never_sampled() -> None:
    logits = random_logits(3, seed=4)
    logits[:, 0, 2:] = 50.0  # huge logits on values that do not exist must not matter
    d = IndependentCategorical(logits, MASK)
    assert torch.all(d.probs[:, ~MASK] == 0)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(3, 3, dtype=torch.float64))
    torch.manual_seed(0)
    samples = torch.stack([d.sample() for _ in range(200)])
    assert torch.all(samples < torch.tensor(SIZES))
    assert not torch.isnan(d.entropy()).any()


def test_independent_sampling_frequencies_match_probabilities() -> None:
    logits = random_logits(1, seed=5, scale=1.0)
    d = IndependentCategorical(logits.expand(20000, -1, -1), MASK)
    torch.manual_seed(1)
    a = d.sample()
    for i, n in enumerate(SIZES):
        freq = torch.bincount(a[:, i], minlength=n).double() / len(a)
        p = d.probs[0, i, :n]
        # 5 standard errors of a binomial proportion with 20000 draws is at most 0.018
        assert torch.all((freq - p).abs() < 5 * torch.sqrt(p * (1 - p) / len(a)) + 1e-9)


def test_independent_mode_is_joint_argmax() -> None:
    logits = random_logits(6, seed=6)
    d = IndependentCategorical(logits, MASK)
    best = ALL_ACTIONS[independent_joint_log_probs(logits).argmax(-1)]
    assert torch.equal(d.mode(), best)


def test_gradient_flows_through_log_prob_and_entropy() -> None:
    logits = random_logits(4, seed=7).requires_grad_(True)
    d = IndependentCategorical(logits, MASK)
    (d.log_prob(d.sample()).sum() + d.entropy().sum()).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad[:, ~MASK] == 0)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="max_n"):
        IndependentCategorical(torch.zeros(2, 3, 5), MASK)


# ---------------------------------------------------------------- autoregressive


@pytest.mark.parametrize("step", [True, False])
def test_autoregressive_log_prob_matches_chain_rule_enumeration(step: bool) -> None:
    pol = TablePolicy(batch=4, seed=10)
    d = pol.dist(step=step)
    brute = pol.joint_log_probs()
    torch.testing.assert_close(brute.exp().sum(-1), torch.ones(4, dtype=torch.float64))
    for col, a in enumerate(ALL_ACTIONS):
        torch.testing.assert_close(d.log_prob(a.expand(4, -1)), brute[:, col], rtol=0, atol=1e-12)


def test_autoregressive_heads_see_only_their_prefix() -> None:
    """Teacher forcing: changing a^i changes heads after i, never heads up to i."""
    pol = TablePolicy(batch=2, seed=11)
    a = torch.tensor([[0, 1, 2], [1, 2, 3]])
    b = a.clone()
    b[:, 1] = torch.tensor([2, 0])
    la, lb = pol.logits(a), pol.logits(b)
    assert torch.equal(la[:, :2], lb[:, :2])
    assert not torch.equal(la[:, 2], lb[:, 2])


def exact_expectation(pol: TablePolicy, per_sequence: torch.Tensor) -> torch.Tensor:
    """``sum_a pi(a|s) f(a)``: every sequence weighted by its exact probability."""
    return (pol.joint_log_probs().exp() * per_sequence).sum(-1)


def estimator_on_every_sequence(fn) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """``[batch, 24]``: the estimator evaluated on each joint action as the sequence."""
    return torch.stack([fn(a) for a in ALL_ACTIONS], dim=-1)


def test_autoregressive_entropy_estimator_is_exact_in_expectation() -> None:
    """Proposition 1.2: E_{a~pi}[sum_i H(pi^i(.|u^{i-1}))] = H(pi)."""
    pol = TablePolicy(batch=5, seed=12)
    d = pol.dist()
    est = estimator_on_every_sequence(lambda a: d.entropy(actions=a.expand(5, -1)))
    truth = joint_entropy(pol.joint_log_probs())
    torch.testing.assert_close(exact_expectation(pol, est), truth, rtol=0, atol=1e-12)


def test_autoregressive_kl_estimator_is_exact_in_expectation() -> None:
    """Proposition 2.2, the same sequence fed to both policies."""
    p_pol, q_pol = TablePolicy(batch=5, seed=13), TablePolicy(batch=5, seed=14)
    p, q = p_pol.dist(), q_pol.dist()
    est = estimator_on_every_sequence(lambda a: p.kl(q, actions=a.expand(5, -1)))
    truth = joint_kl(p_pol.joint_log_probs(), q_pol.joint_log_probs())
    torch.testing.assert_close(exact_expectation(p_pol, est), truth, rtol=0, atol=1e-12)
    assert torch.all(truth > 0.05)  # the two policies really differ


N_MC = 40_000


def test_autoregressive_monte_carlo_estimators_converge() -> None:
    """Averages over sequences sampled by the distribution itself converge to H and KL.

    Tolerance: 5 standard errors of the mean over N_MC = 40,000 sampled sequences (the
    standard deviation measured on the same samples); with the tables used here that is
    below 0.05 nats (about 0.01 for the entropy, 0.03 for the KL).
    """
    torch.manual_seed(2)
    p_pol, q_pol = TablePolicy(batch=1, seed=15), TablePolicy(batch=1, seed=16)
    p, q = p_pol.dist(batch=N_MC), q_pol.dist(batch=N_MC)
    for estimate, truth in (
        (p.entropy(), joint_entropy(p_pol.joint_log_probs())[0]),
        (p.kl(q), joint_kl(p_pol.joint_log_probs(), q_pol.joint_log_probs())[0]),
    ):
        tol = 5 * estimate.std() / math.sqrt(N_MC)
        assert tol < 0.05
        assert abs(estimate.mean() - truth) < tol


def test_autoregressive_sampling_matches_joint_distribution() -> None:
    torch.manual_seed(3)
    pol = TablePolicy(batch=1, seed=17, scale=1.0)
    a = pol.dist(batch=N_MC).sample()
    index = (a[:, 0] * 12 + a[:, 1] * 4 + a[:, 2]).long()  # row of ALL_ACTIONS
    freq = torch.bincount(index, minlength=24).double() / N_MC
    p = pol.joint_log_probs()[0].exp()
    assert torch.all((freq - p).abs() < 5 * torch.sqrt(p * (1 - p) / N_MC) + 1e-9)


def test_entropy_estimator_on_sequences_not_drawn_from_the_policy_is_biased() -> None:
    """Negative control: weighted by anything but pi, the estimator misses H(pi)."""
    pol = TablePolicy(batch=5, seed=18)
    d = pol.dist()
    est = estimator_on_every_sequence(lambda a: d.entropy(actions=a.expand(5, -1)))
    truth = joint_entropy(pol.joint_log_probs())
    uniform_weights = est.mean(-1)  # sequences drawn uniformly instead of from pi
    assert torch.all((uniform_weights - truth).abs() > 0.05)


def test_entropy_estimator_negative_control_by_hand() -> None:
    """Head 2 uniform after a^1=1 (probability 0.1), deterministic after a^1=0.

    H(pi) = H(0.9, 0.1) + 0.1 log 3; the sequence starting with 1, not drawn from pi in
    proportion, gives H(0.9, 0.1) + log 3 instead.
    """
    sizes = (2, 3)
    mask = make_mask(sizes)
    big = 60.0
    first = torch.tensor([math.log(0.9), math.log(0.1), 0.0], dtype=torch.float64)
    second = torch.tensor([[big, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)

    def logits(a: torch.Tensor) -> torch.Tensor:
        return torch.stack([first.expand(len(a), -1), second[a[:, 0]]], dim=1)

    d = AutoregressiveCategorical(logits, mask, batch_size=1)
    h1 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    truth = h1 + 0.1 * math.log(3)
    off_policy = d.entropy(actions=torch.tensor([[1, 0]])).item()
    assert off_policy == pytest.approx(h1 + math.log(3), abs=1e-9)
    assert abs(off_policy - truth) > 0.9
    on_policy = 0.9 * d.entropy(torch.tensor([[0, 0]])) + 0.1 * d.entropy(torch.tensor([[1, 0]]))
    assert on_policy.item() == pytest.approx(truth, abs=1e-9)


def test_autoregressive_mode_is_greedy_sequence() -> None:
    pol = TablePolicy(batch=3, seed=19)
    d = pol.dist()
    mode = d.mode()
    for b in range(3):
        prefix: list[int] = []
        for i in range(len(SIZES)):
            logits = pol.tables[i][(b, *prefix)][: SIZES[i]]
            prefix.append(int(logits.argmax()))
        assert mode[b].tolist() == prefix


def test_sample_then_log_prob_reuses_the_sampling_pass() -> None:
    calls = {"logits": 0}
    pol = TablePolicy(batch=3, seed=20)

    def counting_logits(a: torch.Tensor) -> torch.Tensor:
        calls["logits"] += 1
        return pol.logits(a)

    d = AutoregressiveCategorical(counting_logits, MASK, 3, pol.head)
    a = d.sample()
    lp = d.log_prob(a)
    assert calls["logits"] == 0
    torch.testing.assert_close(lp, d.log_prob(a.clone()))
    assert calls["logits"] == 1


def test_masked_log_softmax_normalises_over_existing_values_only() -> None:
    logits = torch.zeros(1, 3, 4)
    lp = masked_log_softmax(logits, MASK)
    for i, n in enumerate(SIZES):
        torch.testing.assert_close(lp[0, i, :n], torch.full((n,), -math.log(n)))
        assert torch.all(torch.isinf(lp[0, i, n:]))


def test_the_mean_value_is_the_bin_nearest_each_heads_mean_index() -> None:
    torch.manual_seed(4)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    dist = IndependentCategorical(torch.randn(64, 2, 5) * 2, mask)
    chosen = dist.mean_value()
    for b in range(64):
        for i, n in enumerate((5, 3)):
            mean = sum(j * float(dist.probs[b, i, j]) for j in range(n))
            assert abs(int(chosen[b, i]) - mean) <= 0.5 and 0 <= int(chosen[b, i]) < n
    # both ends equally likely: the mean is the middle bin, which the mode never is
    ends = torch.tensor([[[5.0, 0.0, 0.0, 0.0, 5.0]]]).expand(1, 2, 5)
    split = IndependentCategorical(ends.clone(), torch.ones(2, 5, dtype=torch.bool))
    assert split.mean_value().tolist() == [[2, 2]]
    assert split.mode().tolist() != [[2, 2]]
