"""A compiled update computes what the eager one does (train.compile, --compile)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from farl_cli.agents import make_agent
from farl_cli.buffers import compute_gae
from farl_cli.config import load_preset
from farl_cli.training import probe_env

CLOSE = {"rtol": 1e-4, "atol": 1e-5}  # the compiler may fuse and reorder float arithmetic


def _pair(preset_name: str, sets: list[str]) -> tuple[Any, Any]:
    """The same agent, eager and compiled, with the same initial weights."""
    preset = load_preset(preset_name, sets)
    obs_dim, space = probe_env(preset.env)
    compiled_preset = load_preset(preset_name, [*sets, "train.compile=true"])
    torch.manual_seed(0)
    eager = make_agent(preset, obs_dim, space)
    torch.manual_seed(0)
    compiled = make_agent(compiled_preset, obs_dim, space)
    return eager, compiled


def _replay_batch(agent: Any, n: int) -> dict[str, torch.Tensor]:
    """A fixed replay minibatch for an FSAC agent."""
    g = torch.Generator().manual_seed(1)
    obs_dim = agent.buffer.obs.shape[1]
    return {
        "obs": torch.randn(n, obs_dim, generator=g),
        "next_obs": torch.randn(n, obs_dim, generator=g),
        "actions": torch.stack(
            [torch.randint(0, s, (n,), generator=g) for s in agent.space.sizes], 1
        ),
        "rewards": torch.randn(n, generator=g),
        "terminated": torch.rand(n, generator=g) < 0.1,
    }


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(y, x, **CLOSE, msg=name)


def _assert_seeded_updates_match(eager: Any, compiled: Any, batch: dict[str, torch.Tensor]) -> None:
    """Two updates of each from the same torch seed give the same metrics: updates that
    sample (inductor's own random numbers off, only while this compiles)."""
    with torch._inductor.config.patch(fallback_random=True):
        for step in range(2):
            torch.manual_seed(10 + step)
            a = eager.update(batch)
            torch.manual_seed(10 + step)
            b = compiled.update(batch)
            for key in eager.metric_names:
                torch.testing.assert_close(b[key], a[key], **CLOSE, msg=key)


@pytest.mark.parametrize(
    ("batched_twins", "critic", "max_norm", "degree", "policy_loss", "actor"),
    [
        (False, "per_dimension", "null", "null", "reverse_kl", "network"),
        (True, "per_dimension", "null", "null", "reverse_kl", "network"),
        (False, "additive", "1", "null", "reverse_kl", "network"),
        (True, "pairwise", "null", "null", "reverse_kl", "network"),
        (True, "additive", "null", "3", "reverse_kl", "network"),
        (False, "additive", "null", "null", "forward_kl", "network"),
        (True, "per_dimension", "null", "null", "reverse_kl", "boltzmann"),
    ],
)
def test_compiled_fsac_update_matches_the_eager_one(
    batched_twins: bool, critic: str, max_norm: str, degree: str, policy_loss: str, actor: str
) -> None:
    sets = [
        f"agent.critic={critic}",
        f"agent.critic_max_grad_norm={max_norm}",
        f"agent.sub_q_degree={degree}",
        f"agent.policy_loss={policy_loss}",
        f"agent.actor={actor}",
    ]
    eager, compiled = _pair("hopper-fsac", ["agent.hidden_sizes=[32,32]", *sets])
    compiled.batched_twins = batched_twins  # batched is what a GPU runs; the CPU need not
    batch = _replay_batch(eager, 64)
    for _ in range(2):  # the second step starts from weights the first one changed
        a, b = eager.update(batch), compiled.update(batch)
        for key in eager.metric_names:  # the Boltzmann actor's policy loss is nan in both
            torch.testing.assert_close(b[key], a[key], **CLOSE, equal_nan=True, msg=key)
    assert compiled.updates == eager.updates == 2
    for module in ("sub_q", "sub_q_target", *(("policy",) if actor == "network" else ())):
        _assert_same_weights(getattr(eager, module), getattr(compiled, module))


def test_compiled_joint_critic_update_matches_the_eager_one() -> None:
    sets = ["agent.hidden_sizes=[32,32]", "agent.critic=joint", "agent.sub_q_states=16"]
    eager, compiled = _pair("hopper-fsac", sets)
    compiled.batched_twins = True
    batch = _replay_batch(eager, 64)
    _assert_seeded_updates_match(eager, compiled, batch)
    for module in ("policy", "up_q", "up_q_target"):
        _assert_same_weights(getattr(eager, module), getattr(compiled, module))


@pytest.mark.parametrize("entropy_in_targets", ["true", "false"])  # the paper's, the preset's
def test_compiled_autoregressive_fsac_update_matches_the_eager_one(entropy_in_targets: str) -> None:
    # the policy loss backpropagates through the torso pass that the critic losses' graph
    # also holds (it failed: "backward through the graph a second time"); compiled sampling
    # draws from torch's generator as eager does
    sets = ["agent.hidden_sizes=[32,32]", f"agent.entropy_in_targets={entropy_in_targets}"]
    eager, compiled = _pair("platform-fsac", sets)
    compiled.batched_twins = True  # sub-Q and up-Q twins vmapped inside the compiled step
    batch = _replay_batch(eager, 64)
    _assert_seeded_updates_match(eager, compiled, batch)
    for module in ("policy", "sub_q", "up_q", "up_q_target"):
        _assert_same_weights(getattr(eager, module), getattr(compiled, module))


def test_compiled_fppo_update_matches_the_eager_one() -> None:
    sets = ["agent.hidden_sizes=[32,32]", "agent.rollout_steps=128", "agent.minibatch_size=64"]
    eager, compiled = _pair("platform-fppo", [*sets, "agent.epochs=2"])
    g = torch.Generator().manual_seed(1)
    for agent in (eager, compiled):  # the same rollout in both
        data = agent.buffer.data
        torch.manual_seed(3)
        obs = torch.randn_like(data.obs)
        with torch.no_grad():
            dist = agent.policy(obs.flatten(0, 1))
            actions = dist.sample()
            cond = dist.conditionals(actions)
            data.obs.copy_(obs)
            data.actions.copy_(actions.view_as(data.actions))
            data.log_probs.copy_(cond.log_prob(actions).view_as(data.log_probs))
            data.logits.copy_(cond.logits.view_as(data.logits))
            data.values.copy_(agent.value(obs.flatten(0, 1)).view_as(data.values))
        data.rewards.copy_(torch.randn(data.rewards.shape, generator=g))
        g = torch.Generator().manual_seed(1)
    results = []
    for agent in (eager, compiled):
        d = agent.buffer.data
        adv, ret = compute_gae(
            d.rewards, d.values, d.values, d.terminated, d.episode_end, 0.99, 0.95
        )
        torch.manual_seed(4)  # the same minibatch shuffles
        results.append(agent.update(d, adv, ret))
    for key in eager.metric_names:
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-4, abs=1e-5), key
    _assert_same_weights(eager.policy, compiled.policy)
