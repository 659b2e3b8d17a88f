"""FSAC against direct, slow computations of section 5.3 and appendix A."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from farl_cli.agents.fsac import (
    FSACAgent,
    additive_targets,
    boltzmann_policy,
    counterfactual_actions,
    forward_kl_policy_losses,
    global_temperature_loss,
    intermediate_targets,
    pairwise_joint_q,
    pairwise_sub_q,
    policy_losses,
    polyak,
    sampled_soft_value,
    soft_values,
    sub_q_targets,
    temperature_losses,
    top_entropy_term,
    twin_outputs,
    up_q_target,
)
from farl_cli.config import FSACConfig
from farl_cli.distributions import IndependentCategorical
from farl_cli.errors import FarlError
from farl_cli.networks import ordinal_logits
from farl_cli.spaces import make_codec

SIZES = (2, 3, 4)
MASK = torch.tensor([[j < n for j in range(4)] for n in SIZES])


def dist(seed: int, batch: int = 5) -> IndependentCategorical:
    g = torch.Generator().manual_seed(seed)
    return IndependentCategorical(torch.randn(batch, 3, 4, generator=g, dtype=torch.float64), MASK)


def q_values(seed: int, batch: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 4, generator=g, dtype=torch.float64)


ALPHA = torch.tensor([0.3, 0.1, 0.7], dtype=torch.float64)


def test_soft_values_by_inner_product_equal_the_expectation_over_sub_actions() -> None:
    d, q = dist(0), q_values(1)
    fast = soft_values(d.probs, d.log_probs0, q, ALPHA)
    for b in range(5):
        for i, n in enumerate(SIZES):
            p = torch.softmax(d.logits[b, i, :n], -1)
            direct = sum(p[j] * (q[b, i, j] - ALPHA[i] * torch.log(p[j])) for j in range(n))
            assert fast[b, i].item() == pytest.approx(direct.item(), abs=1e-12)


def test_soft_values_equal_a_monte_carlo_average_of_sampled_sub_actions() -> None:
    d, q = dist(2, batch=1), q_values(3, batch=1)
    fast = soft_values(d.probs, d.log_probs0, q, ALPHA)[0]
    big = IndependentCategorical(d.logits.expand(50_000, -1, -1), MASK)
    torch.manual_seed(0)
    a = big.sample()
    sampled = q[0][torch.arange(3), a] - ALPHA * big.log_prob_dims(a)
    torch.testing.assert_close(sampled.mean(0), fast, atol=0.03, rtol=0)


def test_sub_q_targets_policy_and_temperature_losses_against_loops() -> None:
    d, q = dist(4), q_values(5)
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    terminated = torch.tensor([False, True, False, False, True])
    v_next = torch.randn(5, 3, dtype=torch.float64)
    targets = sub_q_targets(rewards, terminated, 0.9, v_next)
    pol = policy_losses(d.probs, d.log_probs0, q, ALPHA)
    log_alpha = ALPHA.log()
    target_entropy = torch.tensor([0.5 * math.log(n) for n in SIZES], dtype=torch.float64)
    temp = temperature_losses(d.probs, d.log_probs0, log_alpha, target_entropy)
    for b in range(5):
        for i, n in enumerate(SIZES):
            done = 1.0 if terminated[b] else 0.0
            assert targets[b, i] == pytest.approx(rewards[b] + 0.9 * (1 - done) * v_next[b, i])
            p = torch.softmax(d.logits[b, i, :n], -1)
            lp = torch.log(p)
            assert pol[b, i] == pytest.approx(float((p * (ALPHA[i] * lp - q[b, i, :n])).sum()))
            expected = float((p * (-ALPHA[i] * (lp + target_entropy[i]))).sum())
            assert temp[b, i] == pytest.approx(expected)


def test_forward_kl_policy_loss_against_loops_and_its_gradient_in_the_logits() -> None:
    d, q = dist(6), q_values(7)
    logits = d.logits.clone().requires_grad_(True)
    heads = IndependentCategorical(logits, MASK)
    loss = forward_kl_policy_losses(heads.log_probs0, q, ALPHA, MASK)
    loss.sum().backward()
    for b in range(5):
        for i, n in enumerate(SIZES):
            p = torch.softmax(d.logits[b, i, :n], -1)
            boltz = torch.softmax(q[b, i, :n] / ALPHA[i], -1)
            kl = float((boltz * (boltz.log() - p.log())).sum())
            assert loss[b, i].item() == pytest.approx(kl)
            # the gradient pi - softmax(Q / alpha): it does not vanish where pi is small
            torch.testing.assert_close(logits.grad[b, i, :n], p - boltz)
            assert torch.all(logits.grad[b, i, n:] == 0)
    # zero at the Boltzmann policy, positive elsewhere; eq. 11 has the same minimizer
    boltz = IndependentCategorical(q / ALPHA[None, :, None], MASK)
    at_min = forward_kl_policy_losses(boltz.log_probs0, q, ALPHA, MASK)
    torch.testing.assert_close(at_min, torch.zeros_like(at_min))
    assert torch.all(loss > 1e-6)


def test_forward_kl_policy_loss_in_the_agent_and_refused_when_autoregressive() -> None:
    a = agent("independent", sizes=(2, 3, 4), critic="additive", policy_loss="forward_kl")
    fill(a)
    obs = torch.randn(8, 3)
    q_all = [q(obs) for q in a.sub_q]
    alpha = a.log_alpha.exp().detach()
    loss, d = a.independent_policy_loss(obs, q_all, alpha)
    q_min = torch.minimum(q_all[0], q_all[1]).detach()
    mask = a.policy.mask
    expected = forward_kl_policy_losses(d.log_probs0, q_min, alpha, mask).mean(0).sum()
    torch.testing.assert_close(loss, expected)
    before = [p.clone() for p in a.policy.parameters()]
    assert all(math.isfinite(float(v)) for v in a.update(a.buffer.sample(8)).values())
    assert any(not torch.equal(b, p) for b, p in zip(before, a.policy.parameters(), strict=True))
    with pytest.raises(FarlError, match=r"agent\.policy_loss: forward_kl needs an independent"):
        agent("autoregressive", policy_loss="forward_kl")


def test_boltzmann_policy_is_where_both_policy_losses_are_least() -> None:
    q = q_values(8)
    d = boltzmann_policy(q, ALPHA, MASK, dense=False)
    for b in range(5):
        for i, n in enumerate(SIZES):
            expected = torch.softmax(q[b, i, :n] / ALPHA[i], -1)
            torch.testing.assert_close(d.probs[b, i, :n], expected)
            assert torch.all(d.probs[b, i, n:] == 0)
    torch.testing.assert_close(
        forward_kl_policy_losses(d.log_probs0, q, ALPHA, MASK), 0 * q[..., 0]
    )
    # eq. 11 at the Boltzmann policy is -alpha_i log sum exp(Q^i / alpha_i), its minimum;
    # any other policy, here a perturbed one, does worse
    least = policy_losses(d.probs, d.log_probs0, q, ALPHA)
    lse = torch.stack(
        [torch.logsumexp(q[:, i, :n] / ALPHA[i], -1) * -ALPHA[i] for i, n in enumerate(SIZES)], 1
    )
    torch.testing.assert_close(least, lse)
    other = IndependentCategorical(d.logits + 0.3 * q_values(9), MASK)
    assert torch.all(policy_losses(other.probs, other.log_probs0, q, ALPHA) > least)


def test_boltzmann_actor_reads_its_policy_off_the_twin_critics_and_keeps_no_network() -> None:
    a = agent("independent", sizes=(2, 3, 4), actor="boltzmann")
    with torch.no_grad():
        a.log_alpha.copy_(torch.log(torch.tensor([0.3, 0.1, 0.7])))
    obs = torch.randn(6, 3)
    d = a.policy(obs)
    with torch.no_grad():
        q_min = torch.minimum(a.sub_q[0](obs), a.sub_q[1](obs))
    for i, n in enumerate((2, 3, 4)):
        torch.testing.assert_close(
            d.probs[:, i, :n], torch.softmax(q_min[:, i, :n] / a.log_alpha.exp()[i], -1)
        )
    best = torch.stack([q_min[:, i, :n].argmax(-1) for i, n in enumerate((2, 3, 4))], 1)
    assert np.array_equal(a.act(obs.numpy(), deterministic=True), best.numpy())
    state = a.state_dict()
    assert "policy" not in state and "policy_optimizer" not in state
    fill(a)
    alpha_before, q_before = a.log_alpha.detach().clone(), [p.clone() for p in a.sub_q.parameters()]
    metrics = a.update(a.buffer.sample(8))
    assert math.isnan(float(metrics["policy_loss"]))  # no policy network, no policy loss
    assert all(math.isfinite(float(v)) for k, v in metrics.items() if k != "policy_loss")
    assert any(not torch.equal(b, p) for b, p in zip(q_before, a.sub_q.parameters(), strict=True))
    # eq. 13 moves each temperature towards the entropy target: up where the head is
    # below it, down where above
    entropy = torch.tensor([float(metrics[f"entropy_{i}"]) for i in range(3)])
    moved = a.log_alpha.detach() - alpha_before
    assert torch.all(torch.sign(moved) == torch.sign(a.target_entropy - entropy))
    # a saved agent acts the same once loaded: the policy is the loaded critics'
    twin = agent("independent", sizes=(2, 3, 4), actor="boltzmann")  # other initial weights
    assert not torch.allclose(twin.policy(obs).probs, a.policy(obs).probs)
    twin.load_state_dict(a.state_dict())
    torch.testing.assert_close(twin.policy(obs).probs, a.policy(obs).probs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"factorization": "autoregressive"},
            r"actor: boltzmann needs .* this one is autoregressive",
        ),
        ({"critic": "pairwise"}, r"actor: boltzmann needs .* agent\.critic: pairwise"),
        (
            {"policy_loss": "forward_kl"},
            r"policy_loss: forward_kl shapes or trains a policy .* at reverse_kl$",
        ),
    ],
)
def test_boltzmann_actor_refuses_what_it_cannot_be(overrides: dict[str, str], message: str) -> None:
    settings = dict(overrides)
    factorization = settings.pop("factorization", "independent")
    with pytest.raises(FarlError, match=message):
        agent(factorization, actor="boltzmann", **settings)


def test_additive_targets_are_the_joint_soft_value_over_every_joint_action() -> None:
    # Q(s, a) = sum_i Q^i(a^i): the factored policy's soft value, by brute force over all
    # 2 x 3 x 4 joint actions with each dimension's entropy weighed by its own temperature
    d, q = dist(6), q_values(7)
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    terminated = torch.tensor([False, True, False, False, True])
    fast = additive_targets(rewards, terminated, 0.9, soft_values(d.probs, d.log_probs0, q, ALPHA))
    for b in range(5):
        probs = [torch.softmax(d.logits[b, i, :n], -1) for i, n in enumerate(SIZES)]
        value = 0.0
        for joint in itertools.product(*(range(n) for n in SIZES)):
            pi = math.prod(float(probs[i][a]) for i, a in enumerate(joint))
            q_joint = sum(float(q[b, i, a]) for i, a in enumerate(joint))
            penalty = sum(float(ALPHA[i] * probs[i][a].log()) for i, a in enumerate(joint))
            value += pi * (q_joint - penalty)
        done = 1.0 if terminated[b] else 0.0
        assert fast[b].item() == pytest.approx(float(rewards[b]) + 0.9 * (1 - done) * value)


RANK = 2


def pair_outputs(seed: int, batch: int = 5) -> torch.Tensor:
    """A pairwise critic's outputs: sub-Q then a rank-2 embedding per value, ``[B, 3, 4, 3]``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 4, 1 + RANK, generator=g, dtype=torch.float64)


def pairwise_q_direct(out: torch.Tensor, joint: tuple[int, ...]) -> torch.Tensor:
    """``sum_i Q^i(a^i) + sum_{i<j} e_i(a^i) . e_j(a^j)`` of one state's joint action, by loops."""
    q = sum(out[i, a, 0] for i, a in enumerate(joint))
    for (i, a), (j, b) in itertools.combinations(enumerate(joint), 2):
        q = q + (out[i, a, 1:] * out[j, b, 1:]).sum()
    return q  # type: ignore[return-value]


def test_pairwise_joint_q_against_a_sum_over_every_pair() -> None:
    out = pair_outputs(8)
    actions = torch.tensor([[0, 2, 3], [1, 0, 1], [1, 1, 0], [0, 0, 2], [1, 2, 1]])
    taken = out[torch.arange(5)[:, None], torch.arange(3), actions]  # [B, k, 1 + r]
    fast = pairwise_joint_q(taken[..., 0], taken[..., 1:])
    for b in range(5):
        joint = tuple(int(a) for a in actions[b])
        assert fast[b].item() == pytest.approx(pairwise_q_direct(out[b], joint).item())


def test_pairwise_soft_value_and_policy_gradient_over_every_joint_action() -> None:
    # the pairwise Q's soft value and its expectation's gradient under the independent
    # policy, by brute force over all 2 x 3 x 4 joint actions, against the per-dimension
    # forms that eqs. 6 and 11 use
    out = pair_outputs(9)
    logits = dist(10).logits.clone().requires_grad_(True)
    d = IndependentCategorical(logits, MASK)
    fast = soft_values(d.probs, d.log_probs0, pairwise_sub_q(d.probs, out, 0.5), ALPHA).sum(-1)
    surrogate = (d.probs * pairwise_sub_q(d.probs.detach(), out, 1.0)).sum((1, 2))
    (fast_grad,) = torch.autograd.grad(surrogate.sum(), logits)
    brute = []
    for b in range(5):
        probs = [torch.softmax(logits[b, i, :n], -1) for i, n in enumerate(SIZES)]
        value = expectation = torch.zeros((), dtype=torch.float64)
        for joint in itertools.product(*(range(n) for n in SIZES)):
            pi = math.prod(probs[i][a] for i, a in enumerate(joint))
            q = pairwise_q_direct(out[b], joint)
            penalty = sum(ALPHA[i] * probs[i][a].log() for i, a in enumerate(joint))
            value = value + pi * (q - penalty)
            expectation = expectation + pi * q
        assert fast[b].item() == pytest.approx(value.item())
        brute.append(expectation)
    (brute_grad,) = torch.autograd.grad(torch.stack(brute).sum(), logits)
    torch.testing.assert_close(fast_grad, brute_grad)


def test_up_q_target_and_global_temperature_loss_against_formulas() -> None:
    r, d = torch.tensor([1.0, 2.0]), torch.tensor([False, True])
    q_next, logp = torch.tensor([3.0, 5.0]), torch.tensor([-1.5, -0.5])
    target = up_q_target(r, d, 0.99, q_next, 0.2 * logp)
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.99 * (3.0 + 0.2 * 1.5), 2.0]))
    loss = global_temperature_loss(torch.tensor(math.log(0.2)), logp, 2.0)
    torch.testing.assert_close(loss, torch.tensor([-0.2 * 0.5, -0.2 * 1.5]))


def test_top_entropy_term_for_each_way_of_weighing_the_heads() -> None:
    log_probs = torch.tensor([[-1.0, -2.0], [-0.5, -0.25]])
    alpha = torch.tensor([0.1, 0.4])
    torch.testing.assert_close(
        top_entropy_term(log_probs, alpha, torch.tensor(0.3), True), 0.3 * log_probs.sum(-1)
    )
    torch.testing.assert_close(
        top_entropy_term(log_probs, alpha, None, True),
        torch.tensor([0.1 * -1.0 + 0.4 * -2.0, 0.1 * -0.5 + 0.4 * -0.25]),
    )
    torch.testing.assert_close(
        top_entropy_term(log_probs, alpha, torch.tensor(0.3), False), torch.zeros(2)
    )


def test_intermediate_targets_shift_by_one_head() -> None:
    v = torch.tensor([[1.0, 2.0, 3.0]])
    assert intermediate_targets(v).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize(("entropy_high", "direction"), [(False, 1), (True, -1)])
def test_temperatures_rise_below_their_target_and_fall_above(
    entropy_high: bool, direction: int
) -> None:
    logits = torch.zeros(4, 3, 4, dtype=torch.float64)
    if not entropy_high:
        logits[..., 0] = 10.0  # nearly deterministic: entropy far below beta log n
    d = IndependentCategorical(logits, MASK)
    target = torch.tensor([0.5 * math.log(n) for n in SIZES], dtype=torch.float64)
    log_alpha = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    temperature_losses(d.probs, d.log_probs0, log_alpha, target).mean(0).sum().backward()
    # gradient descent moves log alpha against the gradient
    assert torch.all(torch.sign(-log_alpha.grad) == direction)


def agent(factorization: str, sizes=(3, 4), **overrides) -> FSACAgent:  # type: ignore[no-untyped-def]
    space = make_codec(spaces.MultiDiscrete(list(sizes)), factorization=factorization).space
    cfg = FSACConfig(**{"hidden_sizes": [16], "batch_size": 8, "learning_starts": 0, **overrides})
    return FSACAgent(3, space, cfg, num_envs=1, seed=0)


def fill(a: FSACAgent, n: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sizes = a.space.sizes
    actions = np.stack([rng.integers(0, s, size=n) for s in sizes], axis=1)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    a.buffer.add(obs, actions, rng.normal(size=n), rng.normal(size=(n, 3)), rng.random(n) < 0.2)


def replay_with_unequal_temperatures(a: FSACAgent) -> dict[str, torch.Tensor]:
    """A filled buffer's batch of 8, the three heads' temperatures set to 0.3, 0.1 and 0.7."""
    fill(a)
    with torch.no_grad():
        a.log_alpha.copy_(torch.log(torch.tensor([0.3, 0.1, 0.7])))
    return a.buffer.sample(8)


def test_target_networks_move_by_exactly_tau() -> None:
    for factorization in ("independent", "autoregressive"):
        a = agent(factorization, tau=0.05)
        fill(a)
        before = [p.clone() for p in a.sub_q_target.parameters()] + [
            p.clone() for p in a.up_q_target.parameters()
        ]
        a.update(a.buffer.sample(8))
        online = [*a.sub_q.parameters(), *a.up_q.parameters()]
        after = [*a.sub_q_target.parameters(), *a.up_q_target.parameters()]
        assert len(after) == len(online) == len(before)
        for old, new, o in zip(before, after, online, strict=True):
            torch.testing.assert_close(new, old + 0.05 * (o - old))
    target, source = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    w = target.weight.detach().clone()
    polyak(target, source, 1.0)
    assert torch.equal(target.weight, source.weight) and not torch.equal(w, source.weight)


@pytest.mark.parametrize(
    ("entropy_in_targets", "critic", "twin_min", "actor"),
    [
        (True, "per_dimension", "per_dimension", "network"),
        (False, "per_dimension", "per_dimension", "network"),
        (True, "additive", "per_dimension", "network"),
        (True, "additive", "joint", "network"),
        (True, "per_dimension", "per_dimension", "boltzmann"),
    ],
)
def test_independent_critic_loss_against_a_direct_computation(
    entropy_in_targets: bool, critic: str, twin_min: str, actor: str
) -> None:
    a = agent(
        "independent",
        sizes=(2, 3, 4),
        entropy_in_targets=entropy_in_targets,
        critic=critic,
        twin_min=twin_min,
        actor=actor,
    )
    batch = replay_with_unequal_temperatures(a)
    obs, nxt, acts = batch["obs"], batch["next_obs"], batch["actions"]
    # decoupled targets drop the entropy term: V^i = pi^i(.)^T Q^i(.)
    alpha = a.log_alpha.exp().detach() * float(entropy_in_targets)
    with torch.no_grad():
        expected = 0.0
        estimates = []  # the first twin's return estimate of each stored action
        for t, twin in enumerate(a.sub_q):
            for b in range(8):
                vs, qs = [], []  # V^i(s') and Q^i(s, a^i) of every dimension
                joint = [0.0, 0.0]  # each target twin's sum_i V^i(s')
                for i, n in enumerate((2, 3, 4)):
                    if actor == "boltzmann":  # the online critics' at the temperature
                        online = (q(nxt[b : b + 1])[0, i, :n] for q in a.sub_q)
                        p = torch.softmax(torch.min(*online) / a.log_alpha.exp()[i], -1)
                    else:
                        p = torch.softmax(
                            a.policy.heads(a.policy.torso(nxt[b : b + 1]))[0, i, :n], -1
                        )
                    q0, q1 = (t(nxt[b : b + 1])[0, i, :n] for t in a.sub_q_target)
                    qt = torch.min(q0, q1)
                    vs.append(float((p * (qt - alpha[i] * p.log())).sum()))
                    for j, qj in enumerate((q0, q1)):
                        joint[j] += float((p * (qj - alpha[i] * p.log())).sum())
                    qs.append(float(twin(obs[b : b + 1])[0, i, acts[b, i]]))
                if t == 0:
                    estimates.append(sum(qs) if critic == "additive" else sum(qs) / len(qs))
                reward, done = float(batch["rewards"][b]), float(batch["terminated"][b])
                if twin_min == "joint":  # the smaller twin's joint value, not a sum of minima
                    assert min(joint) >= sum(vs) - 1e-9
                    y = reward + 0.99 * (1 - done) * min(joint)
                    expected += (sum(qs) - y) ** 2 / 8
                elif critic == "additive":  # one joint target for the sum of the sub-Qs
                    y = reward + 0.99 * (1 - done) * sum(vs)
                    expected += (sum(qs) - y) ** 2 / 8
                else:  # each sub-Q against its own target
                    for q, v in zip(qs, vs, strict=True):
                        expected += (q - (reward + 0.99 * (1 - done) * v)) ** 2 / 8
        fast, _, estimate = a.independent_critic_loss(obs, acts, batch, nxt)
    assert float(fast) == pytest.approx(expected, rel=1e-5)
    assert estimate.tolist() == pytest.approx(estimates, rel=1e-5, abs=1e-6)


def test_additive_critic_learns_and_refuses_an_autoregressive_factorization() -> None:
    a = agent("independent", sizes=(2, 3, 4), critic="additive")
    fill(a)
    before = [p.clone() for p in a.sub_q.parameters()]
    metrics = a.update(a.buffer.sample(8))
    assert math.isfinite(float(metrics["q_loss"]))
    assert any(not torch.equal(b, p) for b, p in zip(before, a.sub_q.parameters(), strict=True))
    with pytest.raises(FarlError, match=r"agent\.critic: additive needs an independent"):
        agent("autoregressive", critic="additive")
    with pytest.raises(FarlError, match=r"agent\.twin_min: joint needs agent\.critic: additive"):
        agent("independent", twin_min="joint")


def test_pairwise_critic_loss_against_the_joint_soft_value_of_every_joint_action() -> None:
    # twin_min: joint, so the target is a brute-force quantity: the smaller of the target
    # twins' soft values over every joint action at s'
    a = agent("independent", sizes=(2, 3, 4), critic="pairwise", twin_min="joint", pair_rank=3)
    fill(a)
    batch = a.buffer.sample(8)
    obs, nxt, acts = batch["obs"], batch["next_obs"], batch["actions"]
    alpha = a.log_alpha.exp().detach()
    with torch.no_grad():
        expected, estimates = 0.0, []
        for b in range(8):
            logits = a.policy.heads(a.policy.torso(nxt[b : b + 1]))[0]
            probs = [torch.softmax(logits[i, :n], -1) for i, n in enumerate((2, 3, 4))]
            values = []
            for twin in a.sub_q_target:
                out, value = twin(nxt[b : b + 1])[0], 0.0
                for joint in itertools.product(range(2), range(3), range(4)):
                    pi = math.prod(float(probs[i][x]) for i, x in enumerate(joint))
                    penalty = sum(float(alpha[i] * probs[i][x].log()) for i, x in enumerate(joint))
                    value += pi * (float(pairwise_q_direct(out, joint)) - penalty)
                values.append(value)
            reward, done = float(batch["rewards"][b]), float(batch["terminated"][b])
            y = reward + 0.99 * (1 - done) * min(values)
            joint = tuple(int(x) for x in acts[b])
            for t, twin in enumerate(a.sub_q):
                q = float(pairwise_q_direct(twin(obs[b : b + 1])[0], joint))
                expected += (q - y) ** 2 / 8
                if t == 0:
                    estimates.append(q)
        fast, _, estimate = a.independent_critic_loss(obs, acts, batch, nxt)
    assert float(fast) == pytest.approx(expected, rel=1e-5)
    assert estimate.tolist() == pytest.approx(estimates, rel=1e-5, abs=1e-6)


def test_pairwise_policy_gradient_against_the_joint_action_expectation() -> None:
    # with equal twins the policy loss is sum_i E[alpha_i log pi^i] - E_{a ~ pi}[Q(s, a)]
    # over the batch; its gradient, by brute force over every joint action, against the
    # agent's per-dimension eq. 11
    a = agent("independent", sizes=(2, 3, 4), critic="pairwise", pair_rank=3)
    a.sub_q[1].load_state_dict(a.sub_q[0].state_dict())
    fill(a)
    obs = a.buffer.sample(8)["obs"]
    alpha = torch.tensor([0.3, 0.1, 0.7])
    params = list(a.policy.parameters())
    loss, _ = a.independent_policy_loss(obs, a._twins(a.sub_q, obs), alpha)
    fast = torch.autograd.grad(loss, params)
    with torch.no_grad():
        out = a.sub_q[0](obs)
    logits = a.policy.heads(a.policy.torso(obs))
    brute = torch.zeros(())
    for b in range(8):
        logp = [torch.log_softmax(logits[b, i, :n], -1) for i, n in enumerate((2, 3, 4))]
        for joint in itertools.product(range(2), range(3), range(4)):
            pi = math.prod(logp[i][x].exp() for i, x in enumerate(joint))
            penalty = sum(alpha[i] * logp[i][x] for i, x in enumerate(joint))
            brute = brute + pi * (penalty - pairwise_q_direct(out[b], joint)) / 8
    # the gradients agree, not the values: eq. 11 against the others' held policies counts
    # each pair term once per end
    for f, g in zip(fast, torch.autograd.grad(brute, params), strict=True):
        torch.testing.assert_close(f, g, rtol=1e-4, atol=1e-6)


def test_pairwise_critic_learns_and_refuses_an_autoregressive_factorization() -> None:
    a = agent("independent", sizes=(2, 3, 4), critic="pairwise", pair_rank=3)
    assert a.sub_q[0](torch.zeros(1, 3)).shape == (1, 3, 4, 4)
    fill(a)
    before = [p.clone() for p in (*a.sub_q.parameters(), *a.policy.parameters())]
    after = [*a.sub_q.parameters(), *a.policy.parameters()]
    metrics = a.update(a.buffer.sample(8))
    assert all(math.isfinite(float(v)) for v in metrics.values())
    assert all(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    with pytest.raises(FarlError, match=r"agent\.critic: pairwise needs an independent"):
        agent("autoregressive", critic="pairwise")


def test_polynomial_sub_qs_learn_and_refuse_spaces_without_evenly_spaced_values() -> None:
    box = make_codec(spaces.Box(-1.0, 1.0, (3,)), bins=5).space
    cfg = FSACConfig(hidden_sizes=[16], batch_size=8, learning_starts=0, sub_q_degree=2)
    a = FSACAgent(3, box, cfg, num_envs=1, seed=0)
    q = a.sub_q[0](torch.randn(4, 3))
    assert q.shape == (4, 3, 5)
    # quadratic in the bin: its third differences along the bins vanish, its second do not
    assert torch.allclose(q.diff(n=3, dim=-1), torch.zeros(4, 3, 2), atol=1e-6)
    fill(a)
    before = [p.clone() for p in a.sub_q.parameters()]
    assert math.isfinite(float(a.update(a.buffer.sample(8))["q_loss"]))
    assert any(not torch.equal(b, p) for b, p in zip(before, a.sub_q.parameters(), strict=True))
    assert not torch.allclose(a.sub_q[0](torch.randn(4, 3)).diff(n=2, dim=-1), torch.zeros(1))
    with pytest.raises(FarlError, match=r"sub_q_degree: 2 .* sizes \[3, 4\], not evenly"):
        agent("independent", sub_q_degree=2)  # MultiDiscrete: values in no order
    with pytest.raises(FarlError, match=r"sub_q_degree: 5 .* at least 6 per dimension"):
        FSACAgent(3, box, cfg.model_copy(update={"sub_q_degree": 5}), num_envs=1, seed=0)
    with pytest.raises(FarlError, match=r"this one is autoregressive"):
        FSACAgent(3, box.with_factorization("autoregressive"), cfg, num_envs=1, seed=0)


def test_a_quadratic_policy_learns_and_refuses_what_has_no_positions() -> None:
    box = make_codec(spaces.Box(-1.0, 1.0, (3,)), bins=5).space
    cfg = FSACConfig(hidden_sizes=[16], batch_size=8, learning_starts=0, policy_degree=2)
    a = FSACAgent(3, box, cfg, num_envs=1, seed=0)
    logits = a.policy(torch.randn(4, 3)).logits
    assert torch.allclose(logits.diff(n=3, dim=-1), torch.zeros(4, 3, 2), atol=1e-6)
    fill(a)
    before = [p.clone() for p in a.policy.parameters()]
    assert math.isfinite(float(a.update(a.buffer.sample(8))["policy_loss"]))
    assert all(not torch.equal(b, p) for b, p in zip(before, a.policy.parameters(), strict=True))
    with pytest.raises(FarlError, match=r"policy_degree: 2 .* sizes \[3, 4\], not evenly"):
        agent("independent", policy_degree=2)
    with pytest.raises(FarlError, match=r"policy_degree: 2 .* this one is autoregressive"):
        FSACAgent(3, box.with_factorization("autoregressive"), cfg, num_envs=1, seed=0)
    with pytest.raises(FarlError, match=r"policy_degree: 2 shapes or trains .* at null$"):
        FSACAgent(3, box, cfg.model_copy(update={"actor": "boltzmann"}), num_envs=1, seed=0)


def test_an_ordinal_policy_learns_and_refuses_what_has_no_positions() -> None:
    box = make_codec(spaces.Box(-1.0, 1.0, (3,)), bins=5).space
    cfg = FSACConfig(hidden_sizes=[16], batch_size=8, learning_starts=0, policy_ordinal=True)
    a = FSACAgent(3, box, cfg, num_envs=1, seed=0)
    obs = torch.randn(4, 3)
    torch.testing.assert_close(
        a.policy(obs).logits, ordinal_logits(a.policy.heads(a.policy.torso(obs)))
    )
    fill(a)
    before = [p.clone() for p in a.policy.parameters()]
    assert math.isfinite(float(a.update(a.buffer.sample(8))["policy_loss"]))
    assert all(not torch.equal(b, p) for b, p in zip(before, a.policy.parameters(), strict=True))
    with pytest.raises(FarlError, match=r"policy_ordinal: true .* sizes \[3, 4\], not evenly"):
        agent("independent", policy_ordinal=True)
    with pytest.raises(FarlError, match=r"policy_ordinal: true .* this one is autoregressive"):
        FSACAgent(3, box.with_factorization("autoregressive"), cfg, num_envs=1, seed=0)
    with pytest.raises(FarlError, match=r"policy_ordinal: true shapes or trains .* at false$"):
        FSACAgent(3, box, cfg.model_copy(update={"actor": "boltzmann"}), num_envs=1, seed=0)


def test_counterfactual_actions_set_one_dimension_to_each_of_its_values() -> None:
    actions = torch.tensor([[1, 0, 3], [0, 2, 1]])
    grid = counterfactual_actions(actions, torch.tensor(SIZES), 4)
    assert grid.shape == (2, 3, 4, 3)
    for b, i, v, j in itertools.product(range(2), range(3), range(4), range(3)):
        # a value past a dimension's last stands in as its last (a padding, masked later)
        expected = min(v, SIZES[i] - 1) if j == i else int(actions[b, j])
        assert int(grid[b, i, v, j]) == expected


def test_sampled_soft_value_in_expectation_is_the_joint_soft_value() -> None:
    # over every joint action a' of 2 x 3 x 4, weighed by pi(a'), against
    # E_pi[Q(s', a') - sum_i alpha_i log pi^i(a'^i)] summed the same way
    d = dist(0, batch=2)
    q_table = torch.randn(
        2, *SIZES, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    for b in range(2):
        probs = [d.probs[b, i, :n] for i, n in enumerate(SIZES)]
        expected, mean = 0.0, 0.0
        for joint in itertools.product(*(range(n) for n in SIZES)):
            pi = math.prod(float(probs[i][x]) for i, x in enumerate(joint))
            penalty = sum(float(ALPHA[i] * probs[i][x].log()) for i, x in enumerate(joint))
            expected += pi * (float(q_table[(b, *joint)]) - penalty)
            q = q_table[(b, *joint)].reshape(1)
            mean += pi * float(sampled_soft_value(q, d.entropy_dims()[b : b + 1], ALPHA)[0])
        assert mean == pytest.approx(expected, abs=1e-12)


def joint_q_direct(a: FSACAgent, obs: torch.Tensor, joint: tuple[int, ...]) -> float:
    """The twin minimum of the joint critic at one state and one joint action."""
    action = torch.tensor([joint])
    with torch.no_grad():
        return float(torch.min(*(twin(obs, action) for twin in a.up_q)))


def test_joint_critic_sub_qs_are_the_papers_in_expectation_and_eq11_its_policy_gradient() -> None:
    a = agent("independent", sizes=(2, 3, 4), critic="joint")
    assert not a.sub_q and len(a.up_q) == 2 and a.up_q[0].code_dim == 9  # one-hot codes
    obs = torch.randn(3, 3)
    logits = a.policy.heads(a.policy.torso(obs))
    probs = [
        [torch.softmax(logits[b, i, :n], -1) for i, n in enumerate((2, 3, 4))] for b in range(3)
    ]
    joints = list(itertools.product(range(2), range(3), range(4)))
    # the estimate with the other sub-actions at each joint action, weighed by its
    # probability, against E_{a^-i ~ pi^-i}[min_t Q_t(s, v, a^-i)] summed directly
    with torch.no_grad():
        mean = torch.zeros(3, 3, 4)
        for joint in joints:
            sample = torch.tensor([joint] * 3)
            pi = torch.tensor(
                [math.prod(float(probs[b][i][x]) for i, x in enumerate(joint)) for b in range(3)]
            )
            mean += pi[:, None, None] * a.counterfactual_sub_q(a.up_q, obs, sample)
        for b, i in itertools.product(range(3), range(3)):
            for v in range(a.space.sizes[i]):
                direct = 0.0
                for joint in joints:
                    if joint[i] != v:
                        continue
                    others = math.prod(float(probs[b][j][x]) for j, x in enumerate(joint) if j != i)
                    direct += others * joint_q_direct(a, obs[b : b + 1], joint)
                assert float(mean[b, i, v]) == pytest.approx(direct, rel=1e-5, abs=1e-6)
    # eq. 11 with those sub-Qs has the gradient of the joint policy's soft policy loss,
    # E_{a ~ pi}[sum_i alpha_i log pi^i(a^i) - min_t Q_t(s, a)], by brute force
    alpha = torch.tensor([0.3, 0.1, 0.7])
    params = list(a.policy.parameters())
    d = a.policy(obs)
    fast = torch.autograd.grad(
        policy_losses(d.probs, d.log_probs0, mean, alpha).mean(0).sum(), params
    )
    brute = torch.zeros(())
    for b, joint in itertools.product(range(3), joints):
        logp = [torch.log_softmax(logits[b, i, :n], -1) for i, n in enumerate((2, 3, 4))]
        pi = math.prod(logp[i][x].exp() for i, x in enumerate(joint))
        penalty = sum(alpha[i] * logp[i][x] for i, x in enumerate(joint))
        brute = brute + pi * (penalty - joint_q_direct(a, obs[b : b + 1], joint)) / 3
    for f, g in zip(fast, torch.autograd.grad(brute, params), strict=True):
        torch.testing.assert_close(f, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("sub_q_states", "cpu_rows"), [(8, 1024), (3, 1024), (8, 20)])
def test_joint_critic_policy_loss_reads_its_sub_qs_at_one_sampled_action(
    sub_q_states: int, cpu_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20 rows a pass: the 5 states' 9 rows each in passes of 2 states
    monkeypatch.setattr("farl_cli.agents.fsac.CPU_ROWS", cpu_rows)
    a = agent("independent", sizes=(2, 3, 4), critic="joint", sub_q_states=sub_q_states)
    obs = 3 * torch.randn(5, 3)
    alpha = torch.tensor([0.3, 0.1, 0.7])
    torch.manual_seed(7)
    loss, _ = a.independent_policy_loss(obs, [], alpha)
    actions = torch.tensor([[0, 1, 2], [1, 0, 3], [1, 2, 0], [0, 0, 1], [1, 1, 1]])
    with torch.no_grad():
        grid = a.counterfactual_sub_q(a.up_q, obs, actions)
    for b, i in itertools.product(range(5), range(3)):
        for v in range(a.space.sizes[i]):
            joint = tuple(v if j == i else int(x) for j, x in enumerate(actions[b]))
            direct = joint_q_direct(a, obs[b : b + 1], joint)
            assert float(grid[b, i, v]) == pytest.approx(direct, rel=1e-5, abs=1e-6)
    torch.manual_seed(7)
    with torch.no_grad():
        sample = a.policy(obs).sample()  # the same draw as the agent's
        logits = a.policy.heads(a.policy.torso(obs))
        expected = 0.0
        m = min(sub_q_states, 5)  # the batch's first states only
        for b, (i, n) in itertools.product(range(m), enumerate((2, 3, 4))):
            p = torch.softmax(logits[b, i, :n], -1)
            for v in range(n):
                joint = tuple(v if j == i else int(x) for j, x in enumerate(sample[b]))
                q = joint_q_direct(a, obs[b : b + 1], joint)
                expected += float(p[v] * (alpha[i] * p[v].log() - q)) / m
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("entropy_in_targets", [True, False])
def test_joint_critic_loss_against_a_direct_computation(entropy_in_targets: bool) -> None:
    a = agent("independent", sizes=(2, 3, 4), critic="joint", entropy_in_targets=entropy_in_targets)
    batch = replay_with_unequal_temperatures(a)
    obs, nxt, acts = batch["obs"], batch["next_obs"], batch["actions"]
    alpha = a.log_alpha.exp().detach() * float(entropy_in_targets)
    torch.manual_seed(3)
    with torch.no_grad():
        fast, _, estimate = a.full_critic_loss(obs, acts, batch, nxt)
    torch.manual_seed(3)
    with torch.no_grad():
        sampled = a.policy(nxt).sample()  # the agent's draw of a' ~ pi(s')
        logits = a.policy.heads(a.policy.torso(nxt))
        expected, estimates = 0.0, []
        for b in range(8):
            action = sampled[b : b + 1]
            q_next = min(float(t(nxt[b : b + 1], action)) for t in a.up_q_target)
            entropy = 0.0
            for i, n in enumerate((2, 3, 4)):
                p = torch.softmax(logits[b, i, :n], -1)
                entropy -= float(alpha[i] * (p * p.log()).sum())
            reward, done = float(batch["rewards"][b]), float(batch["terminated"][b])
            y = reward + 0.99 * (1 - done) * (q_next + entropy)
            for t, twin in enumerate(a.up_q):
                q = float(twin(obs[b : b + 1], acts[b : b + 1]))
                expected += (q - y) ** 2 / 8
                if t == 0:
                    estimates.append(q)
    assert float(fast) == pytest.approx(expected, rel=1e-5)
    assert estimate.tolist() == pytest.approx(estimates, rel=1e-5, abs=1e-6)


def test_joint_critic_reads_binned_torques_as_positions_learns_and_refuses() -> None:
    box = make_codec(spaces.Box(-1.0, 1.0, (3,)), bins=5).space
    cfg = FSACConfig(hidden_sizes=[16], batch_size=8, learning_starts=0, critic="joint")
    a = FSACAgent(3, box, cfg, num_envs=1, seed=0)
    assert a.up_q[0].code_dim == 3  # one input per torque, not 15 one-hot codes
    assert "scale" not in a.up_q[0].state_dict()  # up-Qs saved before it existed still load
    obs, actions = torch.randn(4, 3), torch.tensor([[0, 2, 4], [1, 3, 0], [4, 4, 4], [2, 2, 2]])
    positions = actions.float() / 2.0 - 1.0  # bins 0..4 at -1, -0.5, 0, 0.5, 1
    torch.testing.assert_close(
        a.up_q[0](obs, actions), a.up_q[0].net(torch.cat([obs, positions], -1)).squeeze(-1)
    )
    fill(a)
    before = [p.clone() for p in (*a.up_q.parameters(), *a.policy.parameters())]
    after = [*a.up_q.parameters(), *a.policy.parameters()]
    metrics = a.update(a.buffer.sample(8))
    assert all(math.isfinite(float(v)) for v in metrics.values())
    assert all(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    twin = FSACAgent(3, box, cfg, num_envs=1, seed=1)
    twin.load_state_dict(a.state_dict())
    torch.testing.assert_close(twin.up_q[1](obs, actions), a.up_q[1](obs, actions))
    with pytest.raises(FarlError, match=r"agent\.critic: joint needs an independent"):
        agent("autoregressive", critic="joint")
    with pytest.raises(FarlError, match=r"actor: boltzmann needs .* agent\.critic: joint"):
        agent("independent", critic="joint", actor="boltzmann")
    with pytest.raises(FarlError, match=r"sub_q_degree: 2 shapes sub-Q heads"):
        FSACAgent(3, box, cfg.model_copy(update={"sub_q_degree": 2}), num_envs=1, seed=0)


def log_probs_head_by_head(a: FSACAgent, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """``log pi^i(a^i | u^{i-1})`` of one state's action, head by head, ``[k]``."""
    emb = a.policy.torso(obs)
    return torch.stack(
        [
            torch.log_softmax(a.policy.heads.head(emb, act, i)[0, :n], -1)[act[0, i]]
            for i, n in enumerate(a.space.sizes)
        ]
    )


@pytest.mark.parametrize(
    ("top_alpha", "entropy_in_targets"),
    [("learned", True), ("tied", True), ("heads", True), ("learned", False)],
)
def test_autoregressive_critic_losses_against_a_head_by_head_computation(
    top_alpha: str, entropy_in_targets: bool
) -> None:
    sizes = (3, 4, 2)
    a = agent(
        "autoregressive", sizes=sizes, top_alpha=top_alpha, entropy_in_targets=entropy_in_targets
    )
    fill(a)
    with torch.no_grad():  # unequal temperatures, so that each way of weighing them differs
        a.log_alpha.copy_(torch.log(torch.tensor([0.3, 0.05, 0.6])))
        a.log_alpha_global.copy_(torch.log(torch.tensor(0.9)))
    batch = a.buffer.sample(8)
    obs, nxt, acts = batch["obs"], batch["next_obs"], batch["actions"]
    torch.manual_seed(7)
    fast = a.autoregressive_critic_losses(obs, acts, batch, nxt)
    torch.manual_seed(7)
    with torch.no_grad():
        a_next = a.policy(nxt).sample()  # the same draw as inside the fast path
        alpha = a.log_alpha.exp() * float(entropy_in_targets)  # decoupled: no entropy terms
        alpha_g = {"learned": a.log_alpha_global.exp(), "tied": a.log_alpha.exp().mean()}
        sub = cons = up = 0.0
        for t in range(2):
            twin_q, twin_up = a.sub_q[t], a.up_q[t]
            for b in range(8):
                s, s2, act, a2 = obs[b : b + 1], nxt[b : b + 1], acts[b : b + 1], a_next[b : b + 1]
                emb_pi = a.policy.torso(s)
                for i in range(len(sizes) - 1):  # eq. 9: V^{i+1}(u^i) of the stored prefix
                    n = sizes[i + 1]
                    p = torch.softmax(a.policy.heads.head(emb_pi, act, i + 1)[0, :n], -1)
                    qt = torch.min(
                        *(q.heads.head(q.torso(s), act, i + 1)[0, :n] for q in a.sub_q_target)
                    )
                    target = (p * (qt - alpha[i + 1] * p.log())).sum()
                    q_i = twin_q.heads.head(twin_q.torso(s), act, i)[0, act[0, i]]
                    sub += float((q_i - target) ** 2) / 8
                last = len(sizes) - 1  # eq. 10: Q^n tracks min Q^U(s, a)
                q_n = twin_q.heads.head(twin_q.torso(s), act, last)[0, act[0, last]]
                cons += float((q_n - torch.min(a.up_q[0](s, act), a.up_q[1](s, act))) ** 2) / 8
                # eqs. 4, 5: r + gamma (1 - d) (min Q^U_target(s', a') - E(a'|s')), where E is
                # alpha log pi(a'|s'), or sum_i alpha_i log pi^i(a'^i|u'^{i-1}) (heads)
                v = torch.min(a.up_q_target[0](s2, a2), a.up_q_target[1](s2, a2))
                head_log_probs = log_probs_head_by_head(a, s2, a2)
                if top_alpha == "heads":
                    v = v - (alpha * head_log_probs).sum()
                elif entropy_in_targets:
                    v = v - alpha_g[top_alpha] * head_log_probs.sum()
                y = batch["rewards"][b] + 0.99 * (1 - float(batch["terminated"][b])) * v
                up += float((twin_up(s, act) - y) ** 2) / 8
    fast = {k: v.detach() for k, v in fast.items()}
    assert float(fast["sub"]) == pytest.approx(sub, rel=1e-5)
    assert float(fast["consistency"]) == pytest.approx(cons, rel=1e-5)
    assert float(fast["up"]) == pytest.approx(up, rel=1e-5)


def test_consistency_loss_makes_the_last_sub_q_track_the_up_q() -> None:
    a = agent("autoregressive", sizes=(3, 3), learning_rate=3e-3)
    fill(a, n=32)
    batch = a.buffer.sample(32)
    obs, acts = batch["obs"], batch["actions"]

    def gap() -> float:
        with torch.no_grad():
            q_n = a.sub_q[0](obs, acts)[torch.arange(32), 1, acts[:, 1]]
            return float((q_n - torch.min(a.up_q[0](obs, acts), a.up_q[1](obs, acts))).abs().mean())

    with torch.no_grad():  # start from a clear disagreement
        a.up_q[0].net[-1].bias.fill_(5.0)
        a.up_q[1].net[-1].bias.fill_(5.0)
    start = gap()
    for _ in range(300):
        a.update(batch)
    assert start > 3.0 and gap() < 0.1 * start


N = 4


def train_matching(
    factorization: str, seed: int, steps: int = 8000, critic: str = "per_dimension"
) -> np.ndarray:
    """One-step game, reward 1 when both sub-actions are equal; returns the joint probabilities."""
    torch.manual_seed(seed)
    space = make_codec(spaces.MultiDiscrete([N, N]), factorization=factorization).space
    cfg = FSACConfig(
        hidden_sizes=[32],
        batch_size=64,
        learning_starts=256,
        learning_rate=3e-3,
        tau=0.05,
        entropy_target_beta=0.5,
        initial_alpha=0.2,
        gamma=0.99,
        critic=critic,
    )
    a = FSACAgent(1, space, cfg, num_envs=8, seed=seed)
    obs = np.ones((8, 1), dtype=np.float32)
    done, cont = np.ones(8, dtype=bool), np.zeros(8, dtype=bool)
    for _ in range(steps // 8):
        act = a.explore(obs)
        a.observe(obs, obs, (act[:, 0] == act[:, 1]).astype(np.float64), done, cont)
    joint = torch.tensor(list(itertools.product(range(N), repeat=2)))
    with torch.no_grad():
        return a.policy(torch.ones(len(joint), 1)).log_prob(joint).exp().view(N, N).numpy()


def joint_entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_autoregressive_fsac_reaches_the_diagonal_and_independent_cannot() -> None:
    """Every head's temperature holds its entropy near 0.5 log 4 = 0.69 nats.

    An independent policy then has both heads put about 0.82 on one shared value, so
    P(diagonal) is about 0.82^2 + 3 * 0.06^2 = 0.68 at best. An autoregressive policy lets
    the second head follow the first: P(a2 = a1 | a1) about 0.82 whatever a1, with the
    first head free to spread over the whole diagonal.
    """
    ar = [train_matching("autoregressive", s) for s in (0, 1)]
    ind = [train_matching("independent", s) for s in (0, 1)]
    ar_diag = [float(np.trace(p)) for p in ar]
    ind_diag = [float(np.trace(p)) for p in ind]
    assert min(ar_diag) > 0.75, ar_diag
    assert max(ind_diag) < 0.72, ind_diag
    assert min(ar_diag) - max(ind_diag) > 0.08
    # and the autoregressive policy keeps more entropy while it scores more
    assert min(joint_entropy(p) for p in ar) > max(joint_entropy(p) for p in ind)


def test_joint_critic_learns_the_matching_game_as_far_as_independent_heads_can() -> None:
    # uniform heads are on the diagonal 0.25 of the time; the bound above is about 0.68
    diag = float(np.trace(train_matching("independent", 0, critic="joint")))
    assert 0.6 < diag < 0.72, diag


def test_tied_top_temperature_is_the_mean_of_the_heads_and_is_not_learned() -> None:
    tied = agent("autoregressive", sizes=(3, 4), top_alpha="tied")
    fill(tied)
    with torch.no_grad():
        tied.log_alpha.copy_(torch.log(torch.tensor([0.1, 0.3])))
    assert float(tied.top_alpha()) == pytest.approx(0.2)
    before = tied.log_alpha_global.detach().clone()
    tied.update(tied.buffer.sample(8))
    assert torch.equal(tied.log_alpha_global.detach(), before)
    learned = agent("autoregressive", sizes=(3, 4))
    fill(learned)
    before = learned.log_alpha_global.detach().clone()
    learned.update(learned.buffer.sample(8))
    assert not torch.equal(learned.log_alpha_global.detach(), before)
    assert float(learned.top_alpha()) == pytest.approx(float(learned.log_alpha_global.exp()))


@pytest.mark.parametrize("factorization", ["independent", "autoregressive"])
def test_metrics_report_every_head_temperature_and_entropy(factorization: str) -> None:
    a = agent(factorization, sizes=(3, 4))
    fill(a)
    with torch.no_grad():
        a.log_alpha.copy_(torch.log(torch.tensor([0.1, 0.3])))
    metrics = a.update(a.buffer.sample(8))
    assert set(metrics) == set(a.metric_names)
    # the temperatures the update used, each head's own
    assert metrics["alpha_0"] == pytest.approx(0.1) and metrics["alpha_1"] == pytest.approx(0.3)
    assert metrics["alpha"] == pytest.approx(0.2)
    for i, n in enumerate((3, 4)):
        assert 0.0 <= metrics[f"entropy_{i}"] <= math.log(n) + 1e-6
    if factorization == "independent":  # Proposition 1.1: the heads' entropies add up
        assert metrics["entropy_0"] + metrics["entropy_1"] == pytest.approx(metrics["entropy"])


@pytest.mark.parametrize("factorization", ["independent", "autoregressive"])
def test_batched_twins_compute_what_each_twin_computes(factorization: str) -> None:
    a = agent(factorization, sizes=(3, 4, 2), hidden_sizes=[16, 16])
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(7, 3, generator=g)
    actions = torch.stack([torch.randint(0, n, (7,), generator=g) for n in (3, 4, 2)], 1)
    critics = [(a.sub_q, (obs, actions) if a.autoregressive else (obs,))]
    if a.autoregressive:
        critics.append((a.up_q, (obs, actions)))
    for twins, inputs in critics:
        batched = twin_outputs(twins, *inputs, batched=True)
        by_twin = [twin(*inputs) for twin in twins]
        assert len(batched) == 2 and batched[0].shape == by_twin[0].shape
        for t in range(2):
            torch.testing.assert_close(batched[t], by_twin[t])
        weights = torch.randn((2, *by_twin[0].shape), generator=g)  # distinct for each twin
        grads = torch.autograd.grad(
            sum((q * w).sum() for q, w in zip(batched, weights, strict=True)),
            list(twins.parameters()),
        )
        expected = torch.autograd.grad(
            sum((q * w).sum() for q, w in zip(by_twin, weights, strict=True)),
            list(twins.parameters()),
        )
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("factorization", ["independent", "autoregressive"])
def test_an_update_with_batched_twins_matches_the_eager_one(factorization: str) -> None:
    agents = []
    for batched in (False, True):
        torch.manual_seed(0)
        a = agent(factorization, sizes=(3, 4))
        a.batched_twins = batched  # what the compiled update does, here without compiling
        fill(a)
        agents.append(a)
    for _ in range(3):
        torch.manual_seed(1)  # the autoregressive update re-samples actions
        batch = agents[0].buffer.sample(8)
        agents[1].buffer.sample(8)  # keep the two buffers' generators in step
        torch.manual_seed(1)
        first = agents[0].update(batch)
        torch.manual_seed(1)
        second = agents[1].update(batch)
        for key in agents[0].metric_names:
            torch.testing.assert_close(second[key], first[key], msg=key)
    for name in ("sub_q", "up_q", "sub_q_target", "policy"):
        a, b = getattr(agents[0], name).state_dict(), getattr(agents[1], name).state_dict()
        for key in a:
            torch.testing.assert_close(b[key], a[key], msg=f"{name}.{key}")


@pytest.mark.parametrize("factorization", ["independent", "autoregressive"])
def test_critic_gradient_is_clipped_to_its_norm_and_the_unclipped_norm_is_logged(
    factorization: str,
) -> None:
    def critic_grad_norm(a: FSACAgent) -> float:
        grads = [p.grad for p in (*a.sub_q.parameters(), *a.up_q.parameters())]
        return float(
            torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads if g is not None]))
        )

    agents, logged = [], []
    for max_norm in (None, 1e-3):
        torch.manual_seed(0)  # the same weights
        agents.append(agent(factorization, critic_max_grad_norm=max_norm))
        fill(agents[-1])
    batch = agents[0].buffer.sample(8)
    for a in agents:
        torch.manual_seed(1)  # the autoregressive update samples the next actions
        logged.append(a.update(batch))
    (free, clipped), (logged_free, logged_clipped) = agents, logged
    # the same weights and batch: the same gradient before clipping, logged by both
    assert float(logged_free["q_grad_norm"]) == pytest.approx(float(logged_clipped["q_grad_norm"]))
    assert critic_grad_norm(free) == pytest.approx(float(logged_free["q_grad_norm"]), rel=1e-5)
    assert float(logged_free["q_grad_norm"]) > 1e-2
    assert critic_grad_norm(clipped) == pytest.approx(1e-3, rel=1e-4)


def test_a_loaded_state_keeps_the_optimizers_moments_and_takes_the_new_learning_rate() -> None:
    a = agent("independent")
    fill(a)
    a.update(a.buffer.sample(8))
    b = agent("independent", learning_rate=1e-4)
    b.load_state_dict(a.state_dict())
    for name in ("policy_optimizer", "critic_optimizer", "alpha_optimizer"):
        old, new = getattr(a, name), getattr(b, name)
        assert [g["lr"] for g in new.param_groups] == [1e-4] * len(old.param_groups)
        moments = [s["exp_avg"] for s in old.state.values()]
        torch.testing.assert_close([s["exp_avg"] for s in new.state.values()], moments)


@pytest.mark.parametrize("factorization", ["independent", "autoregressive"])
def test_critic_layer_norm_goes_into_the_critics_and_their_targets_not_the_policy(
    factorization: str,
) -> None:
    def layer_norms(module: torch.nn.Module) -> int:
        return sum(isinstance(m, torch.nn.LayerNorm) for m in module.modules())

    a = agent(factorization, critic_layer_norm=True)
    critics = (a.sub_q, a.sub_q_target, *((a.up_q, a.up_q_target) if a.autoregressive else ()))
    assert all(layer_norms(c) == 2 for c in critics)  # one hidden layer, twice
    assert layer_norms(a.policy) == 0
    fill(a)
    before = [p.detach().clone() for p in a.sub_q.parameters()]
    metrics = a.update(a.buffer.sample(8))
    assert math.isfinite(float(metrics["q_loss"]))
    assert any(not torch.equal(b, p) for b, p in zip(before, a.sub_q.parameters(), strict=True))
    plain = agent(factorization)
    assert layer_norms(plain.sub_q) == 0
    with pytest.raises(RuntimeError, match=r"Unexpected key"):
        plain.sub_q.load_state_dict(a.sub_q.state_dict())  # not interchangeable
