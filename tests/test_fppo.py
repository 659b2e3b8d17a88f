"""FPPO: the loss terms against direct formulas, and why autoregression matters."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from farl_cli.agents.fppo import FPPOAgent, clipped_surrogate, ppo_loss
from farl_cli.config import FPPOConfig
from farl_cli.distributions import IndependentCategorical
from farl_cli.errors import FarlError
from farl_cli.networks import ordinal_logits
from farl_cli.spaces import make_codec


def test_clipped_surrogate_against_the_direct_formula() -> None:
    ratio = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5, 0.5, 1.5])
    adv = torch.tensor([1.0, 1.0, 2.0, -1.0, 1.0, -1.0, -1.0])
    eps = 0.2
    expected = []
    for r, a in zip(ratio.tolist(), adv.tolist(), strict=True):
        expected.append(min(r * a, min(max(r, 1 - eps), 1 + eps) * a))
    torch.testing.assert_close(clipped_surrogate(ratio, adv, eps), torch.tensor(expected))
    # gains are capped above 1 + eps for positive advantages, losses are not
    assert clipped_surrogate(torch.tensor([1.5]), torch.tensor([1.0]), eps).item() == pytest.approx(
        1.2
    )
    assert clipped_surrogate(torch.tensor([1.5]), torch.tensor([-1.0]), eps).item() == -1.5


def test_ppo_loss_combines_its_terms_with_their_coefficients() -> None:
    cfg = FPPOConfig(clip_epsilon=0.2, entropy_coef=0.1, kl_coef=0.3, value_coef=0.5)
    g = torch.Generator().manual_seed(0)
    lp, old = torch.randn(6, generator=g) * 0.3, torch.randn(6, generator=g) * 0.3
    adv, ent, kl = (
        torch.randn(6, generator=g),
        torch.rand(6, generator=g),
        torch.rand(6, generator=g),
    )
    values, returns = torch.randn(6, generator=g), torch.randn(6, generator=g)
    loss, parts = ppo_loss(lp, old, adv, ent, kl, values, returns, cfg)
    ratio = (lp - old).exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    value_loss = 0.5 * ((values - returns) ** 2).mean()
    direct = -surrogate - 0.1 * ent.mean() + 0.3 * kl.mean() + 0.5 * value_loss
    torch.testing.assert_close(loss, direct)
    torch.testing.assert_close(parts["value_loss"], value_loss)
    clip_fraction = ((ratio < 0.8) | (ratio > 1.2)).float().mean()
    torch.testing.assert_close(parts["clip_fraction"], clip_fraction)


def space(n: int, factorization: str):  # type: ignore[no-untyped-def]
    return make_codec(spaces.MultiDiscrete([n, n]), factorization=factorization).space


def test_kl_to_the_stored_policy_uses_the_stored_sequence() -> None:
    """The update's KL(pi_old || pi) for an AR policy: per-head terms along stored actions."""
    torch.manual_seed(0)
    agent = FPPOAgent(3, space(3, "autoregressive"), FPPOConfig(hidden_sizes=[8]), num_envs=4)
    obs = torch.randn(4, 3)
    dist = agent.policy(obs)
    actions = dist.sample()
    stored = IndependentCategorical(dist.conditionals(actions).logits.detach(), agent.policy.mask)
    # the same policy: zero KL along any stored sequence
    torch.testing.assert_close(
        stored.kl(agent.policy(obs).conditionals(actions)), torch.zeros(4), atol=1e-6, rtol=0
    )
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.add_(0.5 * torch.randn_like(p))
    new = agent.policy(obs)
    direct = stored.kl(new.conditionals(actions))
    per_head = []
    for i in range(2):
        p = stored.probs[:, i, :3]
        q = torch.log_softmax(new.logits_fn(actions)[:, i, :3], -1)
        per_head.append((p * (p.log() - q)).sum(-1))
    torch.testing.assert_close(direct, per_head[0] + per_head[1], atol=1e-5, rtol=1e-5)


N_VALUES, ENTROPY_COEF = 4, 0.3


def train_matching(factorization: str, seed: int, updates: int = 60) -> FPPOAgent:
    """A one-step game: reward 1 when the two sub-actions are equal, entropy bonus 0.3.

    The best joint policy is ``p(a) ~ exp(r(a) / 0.3)``, nearly all of it spread over the
    diagonal, with objective ``0.3 log(4 e^(1/0.3) + 12) = 1.446``. An independent policy
    cannot put mass on the diagonal without putting it off the diagonal too: its best
    objective, found numerically over all product policies, is 1.086.
    """
    torch.manual_seed(seed)
    cfg = FPPOConfig(
        learning_rate=3e-3,
        entropy_coef=ENTROPY_COEF,
        kl_coef=0.0,
        hidden_sizes=[32],
        rollout_steps=256,
        minibatch_size=64,
        epochs=4,
        gae_lambda=1.0,
        gamma=1.0,
    )
    num_envs = 16
    agent = FPPOAgent(1, space(N_VALUES, factorization), cfg, num_envs)
    obs = np.ones((num_envs, 1), dtype=np.float32)
    done, cont = np.ones(num_envs, dtype=bool), np.zeros(num_envs, dtype=bool)
    for _ in range(updates * cfg.rollout_steps // num_envs):
        a = agent.explore(obs)
        agent.observe(obs, obs, (a[:, 0] == a[:, 1]).astype(np.float64), done, cont)
    return agent


def objective(agent: FPPOAgent) -> tuple[float, float, float]:
    """Exact E[r] + c H by enumerating the 16 joint actions; also P(diagonal) and H."""
    joint = torch.tensor(list(itertools.product(range(N_VALUES), repeat=2)))
    with torch.no_grad():
        logp = agent.policy(torch.ones(len(joint), 1)).log_prob(joint)
    p = logp.exp()
    diagonal = float(p[joint[:, 0] == joint[:, 1]].sum())
    entropy = float(-(p * logp).sum())
    return diagonal + ENTROPY_COEF * entropy, diagonal, entropy


def test_autoregressive_fppo_beats_independent_when_sub_actions_must_agree() -> None:
    ar = [objective(train_matching("autoregressive", s)) for s in (0, 1)]
    ind = [objective(train_matching("independent", s)) for s in (0, 1)]
    best_independent = 1.0857  # the numerical optimum over all product policies
    for j, diagonal, entropy in ar:
        assert j > best_independent + 0.2, (j, diagonal, entropy)
        # the optimum itself has P(diagonal) = 4 e^(10/3) / (4 e^(10/3) + 12) = 0.903
        assert diagonal > 0.8 and entropy > 0.8 * math.log(N_VALUES)
    for j, _, _ in ind:
        assert j < best_independent + 1e-3
    assert min(a[0] for a in ar) - max(i[0] for i in ind) > 0.2


def test_an_update_happens_once_per_rollout() -> None:
    cfg = FPPOConfig(hidden_sizes=[8], rollout_steps=8, minibatch_size=4, epochs=1)
    agent = FPPOAgent(2, space(3, "independent"), cfg, num_envs=2)
    obs = np.zeros((2, 2), dtype=np.float32)
    results = []
    for _ in range(8):
        agent.explore(obs)
        results.append(agent.observe(obs, obs, np.ones(2), np.zeros(2, bool), np.zeros(2, bool)))
    assert [r is not None for r in results] == [False, False, False, True] * 2
    assert set(results[3]) == set(agent.metric_names)
    # the per-head entropies add up to the joint one (Proposition 1.1)
    heads = [results[3][f"entropy_{i}"] for i in range(agent.space.n_dims)]
    assert len(heads) >= 2
    assert sum(heads) == pytest.approx(results[3]["entropy"], rel=1e-5)
    assert agent.updates == 2


def test_truncation_bootstraps_from_the_final_observation() -> None:
    cfg = FPPOConfig(hidden_sizes=[8], rollout_steps=4, minibatch_size=4, epochs=1)
    agent = FPPOAgent(2, space(3, "independent"), cfg, num_envs=1)
    obs, final = np.zeros((1, 2), np.float32), np.full((1, 2), 3.0, np.float32)
    agent.explore(obs)
    agent.observe(obs, final, np.ones(1), np.zeros(1, bool), np.ones(1, bool))
    with torch.no_grad():
        expected = agent.value(torch.as_tensor(final)).item()
    assert agent.buffer.data.truncated_values[0, 0].item() == pytest.approx(expected)
    assert bool(agent.buffer.data.episode_end[0, 0]) and not bool(
        agent.buffer.data.terminated[0, 0]
    )


def test_shaped_policy_heads_learn_on_binned_torques_and_are_refused_elsewhere() -> None:
    box = make_codec(spaces.Box(-1.0, 1.0, (2,)), bins=5).space
    cfg = FPPOConfig(hidden_sizes=[8], rollout_steps=8, minibatch_size=4, epochs=1, policy_degree=2)
    for shaped in (cfg, cfg.model_copy(update={"policy_ordinal": True})):
        agent = FPPOAgent(2, box, shaped, num_envs=2)
        obs = torch.randn(3, 2)
        scores = agent.policy.heads(agent.policy.torso(obs))
        assert torch.allclose(scores.diff(n=3, dim=-1), torch.zeros(3, 2, 2), atol=1e-6)
        expected = ordinal_logits(scores) if shaped.policy_ordinal else scores
        torch.testing.assert_close(agent.policy(obs).logits, expected)
        before = [p.clone() for p in agent.policy.parameters()]
        rng = np.random.default_rng(0)
        for _ in range(4):
            o = rng.normal(size=(2, 2)).astype(np.float32)
            agent.explore(o)
            agent.observe(o, o, rng.normal(size=2), np.zeros(2, bool), np.zeros(2, bool))
        assert agent.updates == 1
        after = agent.policy.parameters()
        assert all(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    for key, value in (("policy_degree", 2), ("policy_ordinal", True)):
        with pytest.raises(FarlError, match=rf"agent\.{key}: .* sizes \[3, 3\], not evenly"):
            FPPOAgent(2, space(3, "independent"), FPPOConfig(**{key: value}), num_envs=1)
