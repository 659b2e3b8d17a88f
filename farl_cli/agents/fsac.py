"""Factored SAC (section 5.3 and appendix A of the paper), both factorizations.

Independent: n sub-Q functions ``Q^i(s, .)`` and n temperatures ``alpha_i``; every dimension
is evaluated and improved as its own discrete SAC, all n in one batched pass.

Autoregressive: sub-Q functions ``Q^i(u^{i-1}, .)`` over intermediate states
``u^{i-1} = (s, a^1..a^{i-1})``, an up Q-value ``Q^U(s, a)`` on full actions, n temperatures
on intermediate states and a global temperature ``alpha`` for the top MDP.

Not in the paper, an independent agent may instead learn one joint critic ``Q(s, a)`` on
full actions (``critic: joint``) and read each head's sub-Q off it at a sampled action of the
other dimensions.

Expectations over a sub-action are inner products with the sub-policy (equation 8). Every
loss below is a pure function of tensors, named after its equation, so that tests can check
it against a direct computation. Critics are twins; their minimum is used in targets and in
the policy loss, and target copies follow by Polyak averaging with rate ``tau``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from farl_cli.agents.common import PolicyActor, check_positions, compiled, policy_network
from farl_cli.buffers import ReplayBuffer
from farl_cli.config import FSACConfig
from farl_cli.distributions import FactoredDistribution, IndependentCategorical
from farl_cli.errors import FarlError
from farl_cli.networks import FactoredPolicy, RunningNorm, SubQNet, UpQNet
from farl_cli.spaces import FactoredSpace

# ---------------------------------------------------------------------- the paper's terms


def soft_values(probs: Tensor, log_probs: Tensor, q: Tensor, alpha: Tensor) -> Tensor:
    """Equation 6: ``V^i = pi^i(.)^T [Q^i(.) - alpha_i log pi^i(.)]`` for every i, ``[B, k]``.

    ``log_probs`` must be 0 where a value does not exist (its probability is 0 there).
    """
    return (probs * (q - alpha[:, None] * log_probs)).sum(-1)


def sub_q_targets(rewards: Tensor, terminated: Tensor, gamma: float, v_next: Tensor) -> Tensor:
    """Equation 5 with ``Q^i``, ``V^i``: ``r + gamma (1 - done) V^i(s')``, ``[B, k]``."""
    return rewards[:, None] + gamma * (1.0 - terminated.float())[:, None] * v_next


def additive_targets(rewards: Tensor, terminated: Tensor, gamma: float, v_next: Tensor) -> Tensor:
    """Eq. 5 for a joint Q that is the sum of the sub-Qs: ``r + gamma (1 - done) sum_i V^i(s')``,
    ``[B]``; the sum of eq. 6's soft values is the factored policy's soft value under it."""
    return sub_q_targets(rewards, terminated, gamma, v_next.sum(-1, keepdim=True))[:, 0]


def pairwise_joint_q(q_taken: Tensor, e_taken: Tensor) -> Tensor:
    """The pairwise critic's joint Q of actions, ``sum_i Q^i + sum_{i<j} e_i . e_j``, ``[B]``.

    ``q_taken`` ``[B, k]`` and ``e_taken`` ``[B, k, r]`` are the sub-Qs and embeddings of the
    actions' values; the pair sum is half the square of the summed embeddings less their
    squares.
    """
    total = e_taken.sum(1)
    pairs = 0.5 * (total.pow(2).sum(-1) - e_taken.pow(2).sum((1, 2)))
    return q_taken.sum(-1) + pairs


def pairwise_sub_q(probs: Tensor, outputs: Tensor, share: float) -> Tensor:
    """Sub-Qs with their pair terms in expectation over the other dimensions' policies,
    ``Q^i(.) + share e_i(.) . sum_{j != i} pi^j(.)^T e_j(.)``, ``[B, k, max_n]``.

    ``outputs`` is the pairwise critic's ``[B, k, max_n, 1 + r]``. With ``share`` 1/2 the
    sum over i of ``pi^i(.)^T`` of it is the joint Q's expectation under the independent
    policy, the soft value of eq. 6 summed; with ``share`` 1 (and ``probs`` held fixed) it is
    that expectation's gradient with respect to ``pi^i``, so eq. 11 improves each dimension
    against the others' current policies.
    """
    q, e = outputs[..., 0], outputs[..., 1:]
    means = (probs.unsqueeze(-1) * e).sum(2)  # [B, k, r]
    others = means.sum(1, keepdim=True) - means
    return q + share * (e * others.unsqueeze(2)).sum(-1)


def policy_losses(probs: Tensor, log_probs: Tensor, q: Tensor, alpha: Tensor) -> Tensor:
    """Equation 11: ``pi^i(.)^T [alpha_i log pi^i(.) - Q^i(.)]`` for every i, ``[B, k]``."""
    return (probs * (alpha[:, None] * log_probs - q)).sum(-1)


def forward_kl_policy_losses(log_probs: Tensor, q: Tensor, alpha: Tensor, mask: Tensor) -> Tensor:
    """Not in the paper: ``KL(softmax(Q^i / alpha_i) || pi^i)`` for every i, ``[B, k]``.

    Equation 11 is ``alpha_i KL(pi^i || softmax(Q^i / alpha_i))`` up to a constant; both are
    0 at the same policy, but this one's gradient in the logits, ``pi^i - softmax(Q^i /
    alpha_i)``, does not vanish on a value the policy has given up on. ``log_probs`` must be
    0 where a value does not exist (``mask`` False).
    """
    log_target = torch.log_softmax(torch.where(mask, q / alpha[:, None], -torch.inf), dim=-1)
    target = log_target.exp()
    return (target * torch.where(mask, log_target - log_probs, 0.0)).sum(-1)


def counterfactual_actions(actions: Tensor, sizes: Tensor, max_n: int) -> Tensor:
    """Every action one sub-action away from ``actions`` ``[B, k]``, ``[B, k, max_n, k]``:
    entry ``[b, i, v]`` is ``actions[b]`` with dimension i set to v (to ``n_i - 1`` where v
    is not a value of dimension i, a padding that the losses mask out)."""
    k = actions.shape[-1]
    values = torch.arange(max_n, device=actions.device)[None, :, None]
    own = torch.eye(k, dtype=torch.bool, device=actions.device)[:, None, :]  # [k, 1, k]
    return torch.where(own, torch.minimum(values, sizes - 1), actions[:, None, None, :])


def sampled_soft_value(q: Tensor, entropy_dims: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 6 for a joint critic at one action ``a' ~ pi(s')``: ``Q(s', a') + sum_i alpha_i
    H(pi^i(s'))``, ``[B]``, an unbiased estimate of the joint soft value ``E_pi[Q(s', a') -
    sum_i alpha_i log pi^i(a'^i)]`` (the entropies exact, the expected Q sampled)."""
    return q + (alpha * entropy_dims).sum(-1)


def boltzmann_policy(q: Tensor, alpha: Tensor, mask: Tensor, dense: bool) -> IndependentCategorical:
    """Not in the paper: every head ``softmax(Q^i / alpha_i)``, where eq. 11 and the forward
    KL are both 0; the policy of ``agent.actor: boltzmann``, read off the critic."""
    return IndependentCategorical(q / alpha[:, None], mask, dense)


def temperature_losses(
    probs: Tensor, log_probs: Tensor, log_alpha: Tensor, target_entropy: Tensor
) -> Tensor:
    """Equation 13: ``pi^i(.)^T [-alpha_i (log pi^i(.) + H_i)]`` for every i, ``[B, k]``.

    Its gradient raises ``alpha_i`` when the entropy of ``pi^i`` is below ``H_i``.
    """
    alpha = log_alpha.exp()
    return (probs * (-alpha[:, None] * (log_probs + target_entropy[:, None]))).sum(-1)


def intermediate_targets(v_heads: Tensor) -> Tensor:
    """Equation 9: sub-Q i < n is pulled towards ``V^{i+1}(u^i)``, zero reward, discount 1.

    ``v_heads[:, i]`` is the soft value of head i's intermediate state along the stored
    action; the target of head i is the soft value of head i + 1, ``[B, k - 1]``.
    """
    return v_heads[:, 1:]


def up_q_target(
    rewards: Tensor,
    terminated: Tensor,
    gamma: float,
    q_up_next: Tensor,
    entropy_term_next: Tensor,
) -> Tensor:
    """Equations 4 and 5 for ``Q^U``: ``r + gamma (1 - done) (Q^U(s', a') - E(a'|s'))`` with
    ``a'`` one action sampled from the current policy.

    ``E`` is the temperature-weighted log-probability of ``a'``: ``alpha log pi(a'|s')`` in
    the paper, ``sum_i alpha_i log pi^i(a'^i|u'^{i-1})`` with ``top_alpha: heads``, zero
    without entropy in the targets (:func:`top_entropy_term`).
    """
    return rewards + gamma * (1.0 - terminated.float()) * (q_up_next - entropy_term_next)


def top_entropy_term(
    log_prob_dims: Tensor, alpha: Tensor, top_alpha: Tensor | None, entropy_in_targets: bool
) -> Tensor:
    """The entropy term of the up-Q target for actions with per-head log-probs ``[B, k]``.

    With a top temperature (learned by eq. 12, or tied to the heads): ``alpha log pi(a|s)``.
    Without one (``top_alpha: heads``): each head's log-probability weighted by its own
    temperature, which is exactly the entropy the bottom MDP's chain of soft values collects
    along the same sequence, so the top and bottom soft values agree and no temperature is
    left without feedback. Zero when the critics learn without entropy terms.
    """
    if not entropy_in_targets:
        return torch.zeros_like(log_prob_dims[:, 0])
    if top_alpha is None:
        return (alpha * log_prob_dims).sum(-1)
    return top_alpha * log_prob_dims.sum(-1)


def global_temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """Equation 12: ``-alpha (log pi(a|s) + H)`` with ``a`` sampled from the policy, ``[B]``."""
    return -log_alpha.exp() * (log_prob + target_entropy)


def per_head(alpha: Tensor, entropy_dims: Tensor) -> dict[str, Tensor]:
    """``alpha_i`` and the mean entropy of head i over a batch (``[B, k]``), as metrics."""
    entropies = entropy_dims.mean(0)
    return {
        **{f"alpha_{i}": a for i, a in enumerate(alpha.unbind())},
        **{f"entropy_{i}": h for i, h in enumerate(entropies.unbind())},
    }


def polyak(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau online`` for every parameter, in one batched call."""
    targets, onlines = list(target.parameters()), list(online.parameters())
    if targets:  # the independent agent's empty up-Q list has none
        with torch.no_grad():
            torch._foreach_lerp_(targets, onlines, tau)


def stacked_parameters(twins: nn.ModuleList) -> dict[str, Tensor]:
    """Every parameter of the twins stacked on a new first axis; gradients reach both."""
    members = [dict(twin.named_parameters()) for twin in twins]
    return {name: torch.stack([m[name] for m in members]) for name in members[0]}


def twin_outputs(twins: nn.ModuleList, *inputs: Tensor, batched: bool = False) -> list[Tensor]:
    """Both twins' outputs on the same inputs, one tensor each.

    By default each twin is called in turn (on a CPU the batched form is slower, see
    ``benchmarks/twin_critics.py``). ``batched``: one computation over the stacked parameters
    (``torch.func.vmap`` of a functional call), as a compiled update on CUDA does, so that
    each layer is launched once for both twins.
    """
    if not batched:
        return [twin(*inputs) for twin in twins]
    buffers = dict(twins[0].named_buffers())  # masks and code offsets: the same in both

    def one(params: dict[str, Tensor], *args: Tensor) -> Tensor:
        return torch.func.functional_call(twins[0], (params, buffers), args)

    in_dims = (0, *([None] * len(inputs)))
    return list(torch.func.vmap(one, in_dims=in_dims)(stacked_parameters(twins), *inputs))


def twin_min(q: list[Tensor]) -> Tensor:
    """The twin minimum of the twins' outputs: the pessimistic estimate."""
    return torch.min(q[0], q[1])


# ---------------------------------------------------------------------- the agent


def _yaml(value: object) -> str:
    """A setting's value as a preset writes it: ``null``, ``true``, ``2``, ``reverse_kl``."""
    return value if isinstance(value, str) else json.dumps(value)


CPU_ROWS = 1024  # rows per critic pass when the joint critic's sub-Qs are read on a CPU


class BoltzmannPolicy:
    """``obs -> FactoredDistribution`` with no network of its own (``agent.actor:
    boltzmann``): each head is the Boltzmann policy of the twin minimum of the online sub-Qs
    at the current temperatures, so it never lags behind its critic."""

    def __init__(
        self,
        sub_q: Callable[[Tensor], list[Tensor]],
        log_alpha: Tensor,
        mask: Tensor,
        dense: bool,
    ) -> None:
        self.sub_q, self.log_alpha, self.mask, self.dense = sub_q, log_alpha, mask, dense

    def __call__(self, obs: Tensor) -> IndependentCategorical:
        """The policy's distribution for a batch of observations."""
        alpha = self.log_alpha.exp().detach()
        return boltzmann_policy(twin_min(self.sub_q(obs)), alpha, self.mask, self.dense)


class FSACAgent(PolicyActor):
    """Factored SAC: ``explore`` and ``observe`` while training, ``act`` to evaluate."""

    stateful = (
        "policy", "sub_q", "up_q", "sub_q_target", "up_q_target", "normalizer",
        "policy_optimizer", "critic_optimizer", "alpha_optimizer",
    )  # fmt: skip

    def __init__(
        self,
        obs_dim: int,
        space: FactoredSpace,
        cfg: FSACConfig,
        num_envs: int,
        seed: int = 0,
        save_buffer: bool = False,
        device: torch.device | None = None,
        compile: bool = False,
    ) -> None:
        self.cfg = cfg
        self.device = device = device or torch.device("cpu")
        self.space = space
        self.num_envs = num_envs
        self.save_buffer = save_buffer
        self.autoregressive = space.factorization == "autoregressive"
        # additive, pairwise or joint: one joint Q regressed on one joint target
        self.joint_critic = cfg.critic != "per_dimension"
        # joint: that Q is one network on full actions, and the sub-Qs are read off it
        self.full_q = cfg.critic == "joint"
        if self.autoregressive and self.joint_critic:
            raise FarlError(
                f"agent.critic: {cfg.critic} needs an independent factorization"
                " (env.factorization: independent); an autoregressive one learns sub-Q and"
                " up-Q values instead"
            )
        if cfg.twin_min == "joint" and not self.joint_critic:
            raise FarlError(
                "agent.twin_min: joint needs agent.critic: additive, pairwise or joint; each of the"
                " paper's sub-Qs is a value of its own, whose twin minimum is taken on its own"
            )
        if self.autoregressive and cfg.policy_loss != "reverse_kl":
            raise FarlError(
                f"agent.policy_loss: {cfg.policy_loss} needs an independent factorization"
                " (env.factorization: independent); an autoregressive policy learns by eq. 11"
            )
        boltzmann = cfg.actor == "boltzmann"
        if boltzmann and (self.autoregressive or cfg.critic in ("pairwise", "joint")):
            raise FarlError(
                "agent.actor: boltzmann needs an independent factorization"
                " (env.factorization: independent) and sub-Qs that do not depend on the"
                f" policy (agent.critic: per_dimension or additive); this one is"
                f" {space.factorization}, agent.critic: {cfg.critic}"
            )
        if boltzmann:  # no policy network to shape or train
            for key in ("policy_loss", "policy_degree", "policy_ordinal"):
                value, default = getattr(cfg, key), FSACConfig.model_fields[key].default
                if value != default:
                    raise FarlError(
                        f"agent.{key}: {_yaml(value)} shapes or trains a policy network, and"
                        f" agent.actor: boltzmann has none; leave agent.{key} at"
                        f" {_yaml(default)}"
                    )
        degree = cfg.sub_q_degree
        if degree is not None and self.full_q:
            raise FarlError(
                f"agent.sub_q_degree: {degree} shapes sub-Q heads, and agent.critic: joint has"
                " none (its one network reads the bins' positions); leave agent.sub_q_degree at"
                " null"
            )
        if degree is not None:
            check_positions(f"agent.sub_q_degree: {degree}", space, degree + 1)
        self.normalizer = RunningNorm(obs_dim)
        self.normalizer.enabled = cfg.normalize_observations
        hidden, act = cfg.hidden_sizes, cfg.activation
        # built first, as it always was: a seed draws the same initial weights as before
        network = None if boltzmann else policy_network(obs_dim, space, cfg)
        norm = cfg.critic_layer_norm
        rank = cfg.pair_rank if cfg.critic == "pairwise" else 0
        self.sub_q = nn.ModuleList(
            []
            if self.full_q
            else [SubQNet(obs_dim, space, hidden, act, norm, rank, degree) for _ in range(2)]
        )
        ordered = self.full_q and space.evenly_spaced  # binned torques enter as positions
        self.up_q = nn.ModuleList(  # Q(s, a): the up-Q, or the joint critic
            [UpQNet(obs_dim, space, hidden, act, norm, ordered) for _ in range(2)]
            if self.autoregressive or self.full_q
            else []
        )
        # built on the CPU, then moved: the same initial weights for a seed on every device
        for module in (self.normalizer, network, self.sub_q, self.up_q):
            if module is not None:
                module.to(device)
        self.sub_q_target = copy.deepcopy(self.sub_q).requires_grad_(False)
        self.up_q_target = copy.deepcopy(self.up_q).requires_grad_(False)
        log_alpha0 = math.log(cfg.initial_alpha)
        self.log_alpha = nn.Parameter(torch.full((space.n_dims,), log_alpha0, device=device))
        self.log_alpha_global = nn.Parameter(torch.tensor(log_alpha0, device=device))  # top
        self.policy: FactoredPolicy | BoltzmannPolicy = (
            BoltzmannPolicy(
                lambda obs: self._twins(self.sub_q, obs),
                self.log_alpha,
                self.sub_q[0].mask,
                self.sub_q[0].dense,
            )
            if network is None
            else network
        )
        self.size_tensor = torch.tensor(space.sizes, device=device)
        sizes = self.size_tensor.float()
        self.target_entropy = cfg.entropy_target_beta * sizes.log()  # beta log n_i (eq. 13)
        self.target_entropy_global = float(self.target_entropy.sum())  # beta sum log n_i
        lr = cfg.learning_rate
        capturable = device.type == "cuda"  # their steps replay inside a CUDA graph
        self.policy_optimizer = (
            None
            if network is None
            else torch.optim.Adam(network.parameters(), lr=lr, fused=True, capturable=capturable)
        )
        if network is None:  # nothing of the policy's own to save
            self.stateful = tuple(n for n in self.stateful if not n.startswith("policy"))
        self.critic_parameters = [*self.sub_q.parameters(), *self.up_q.parameters()]
        self.critic_optimizer = torch.optim.Adam(
            self.critic_parameters,
            lr=lr,
            fused=True,
            capturable=capturable,
        )
        self.alpha_optimizer = torch.optim.Adam(
            [self.log_alpha, self.log_alpha_global], lr=lr, capturable=capturable
        )
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_dim, space.sizes, seed, device)
        self.rng = np.random.default_rng(seed + 1)  # uniform actions before learning starts
        self.sizes = np.array(space.sizes)
        self.steps = 0  # vector steps observed
        self.updates = 0
        # the whole gradient step (losses, backward passes, optimizer steps, target copies)
        # as one compiled function; the same code as the eager path
        self._learn = compiled(self._learn, device) if compile else self._learn
        # both twins as one vmapped computation where launches cost (compiled, on a GPU); on
        # a CPU it is slower, eager or compiled (benchmarks/twin_critics.py, throughput.py)
        self.batched_twins = compile and device.type == "cuda"
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (obs, actions) of explore
        self.metric_names: tuple[str, ...] = (
            "q_loss", *(() if self.autoregressive else ("q_mean",)), "q_grad_norm",
            "policy_loss", "alpha", "entropy",
            *(("up_q_loss", "consistency_loss", "alpha_global") if self.autoregressive else ()),
            # per head: a temperature that runs away, or a head that collapses, is hidden in
            # the mean and the sum
            *(f"alpha_{i}" for i in range(space.n_dims)),
            *(f"entropy_{i}" for i in range(space.n_dims)),
        )  # fmt: skip

    # ------------------------------------------------------------------ acting

    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Uniform actions until ``learning_starts`` transitions are stored, then the policy's."""
        x = self._seen(obs)
        if self.buffer.size < self.cfg.learning_starts:
            actions = self.rng.integers(0, self.sizes, size=(len(obs), len(self.sizes)))
        else:
            actions = self.policy(x).sample().cpu().numpy()
        self._last = (np.array(obs, dtype=np.float32), actions)
        return actions

    def observe(
        self,
        next_obs: np.ndarray,
        final_obs: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> dict[str, Tensor] | None:
        """Store the transitions of the last ``explore``; learn every ``update_every`` steps.

        Truncated episodes are stored as non-terminal with their final observation, so their
        value is bootstrapped.
        """
        assert self._last is not None, "observe() follows explore()"
        obs, actions = self._last
        self.buffer.add(obs, actions, rewards, final_obs, terminated)
        self.steps += 1
        ready = self.buffer.size >= max(self.cfg.learning_starts, self.cfg.batch_size)
        if not ready or self.steps % self.cfg.update_every:
            return None
        totals: dict[str, Tensor] = {}
        for _ in range(self.cfg.gradient_steps):
            for name, value in self.update(self.buffer.sample(self.cfg.batch_size)).items():
                part = value / self.cfg.gradient_steps
                totals[name] = totals[name] + part if name in totals else part
        return totals

    # ------------------------------------------------------------------ learning

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One gradient step of critics, policy and temperatures, then the target copies.

        Metrics come back as 0-d tensors: reading them waits for the device, which the
        training loop does only when it logs."""
        metrics = self._learn(batch)
        self.updates += 1  # a Python counter: outside the compiled function
        return metrics

    def _learn(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        obs, next_obs = self._obs(batch["obs"]), self._obs(batch["next_obs"])
        if self.autoregressive:
            metrics = self._update_autoregressive(obs, batch["actions"], batch, next_obs)
        else:
            metrics = self._update_independent(obs, batch["actions"], batch, next_obs)
        for target, online in ((self.sub_q_target, self.sub_q), (self.up_q_target, self.up_q)):
            polyak(target, online, self.cfg.tau)
        return metrics

    def _twins(self, twins: nn.ModuleList, *inputs: Tensor) -> list[Tensor]:
        return twin_outputs(twins, *inputs, batched=self.batched_twins)

    def _step(self, optimizer: torch.optim.Optimizer, loss: Tensor, keep: bool = False) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=keep)
        optimizer.step()

    def _critic_step(self, loss: Tensor, keep: bool = False) -> Tensor:
        """One critic step, its gradient clipped to ``critic_max_grad_norm`` when that is
        set; the gradient's norm before clipping."""
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=keep)
        norm = nn.utils.get_total_norm(
            [p.grad for p in self.critic_parameters if p.grad is not None]
        )
        if self.cfg.critic_max_grad_norm is not None:
            nn.utils.clip_grads_with_norm_(
                self.critic_parameters, self.cfg.critic_max_grad_norm, norm
            )
        self.critic_optimizer.step()
        return norm.detach()

    def sub_q_values(self, outputs: Tensor, probs: Tensor, share: float) -> Tensor:
        """A critic's sub-Qs ``[B, k, max_n]``: its outputs, or the pairwise critic's sub-Qs
        with their pair terms in expectation under ``probs`` (:func:`pairwise_sub_q`)."""
        if self.cfg.critic != "pairwise":
            return outputs
        return pairwise_sub_q(probs, outputs, share)

    def independent_critic_loss(
        self, obs: Tensor, actions: Tensor, batch: dict[str, Tensor], next_obs: Tensor
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Equation 5 with ``Q^i`` and the soft values ``V^i`` of eq. 6, all dimensions at
        once (or, with ``critic: additive``, their sum against one joint target, whose twin
        minimum ``twin_min: joint`` takes of the summed values; ``pairwise`` adds the pair
        terms to the sum), summed over the twins; also the twins' outputs at ``obs`` and the
        first twin's estimate of the stored actions' return, ``[B]`` (the joint Q, or the
        mean sub-Q for the paper's critic, whose every sub-Q estimates the whole return)."""
        joint = self.joint_critic
        with torch.no_grad():
            nxt = self.policy(next_obs)
            q_twins = [  # each twin's sub-Qs; summed under the policy, its joint Q's mean
                self.sub_q_values(q, nxt.probs, 0.5)
                for q in self._twins(self.sub_q_target, next_obs)
            ]
            alpha = self.target_alpha()
            if self.cfg.twin_min == "joint":  # each twin's joint soft value, then the smaller
                v_twins = [
                    soft_values(nxt.probs, nxt.log_probs0, q, alpha).sum(-1, keepdim=True)
                    for q in q_twins
                ]
                v_next = twin_min(v_twins)
            else:
                v_next = soft_values(nxt.probs, nxt.log_probs0, twin_min(q_twins), alpha)
            targets = (additive_targets if joint else sub_q_targets)(
                batch["rewards"], batch["terminated"], self.cfg.gamma, v_next
            )
        q_all = self._twins(self.sub_q, obs)
        if self.cfg.critic == "pairwise":
            index = actions[:, :, None, None].expand(-1, -1, 1, self.cfg.pair_rank + 1)
            taken_values = [q.gather(2, index).squeeze(2) for q in q_all]  # [B, k, 1 + r]
            q_taken = [pairwise_joint_q(v[..., 0], v[..., 1:]) for v in taken_values]
        else:
            taken = [q.gather(-1, actions.unsqueeze(-1)).squeeze(-1) for q in q_all]  # [B, k]
            q_taken = [q.sum(-1) for q in taken] if joint else taken
        if joint:
            q_loss = sum((q - targets).pow(2).mean() for q in q_taken)
            estimate = q_taken[0]
        else:
            q_loss = sum((q - targets).pow(2).mean(0).sum() for q in q_taken)
            estimate = q_taken[0].mean(-1)
        return q_loss, q_all, estimate.detach()  # type: ignore[return-value]

    def full_critic_loss(
        self, obs: Tensor, actions: Tensor, batch: dict[str, Tensor], next_obs: Tensor
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Equation 5 for the joint critic ``Q(s, a)`` (``critic: joint``) against the
        sampled soft value of the next state, summed over the twins; no sub-Q outputs (eq. 11
        reads its own off the critic); and the first twin's Q of the stored actions, ``[B]``."""
        with torch.no_grad():
            nxt = self.policy(next_obs)
            q_next = twin_min(self._twins(self.up_q_target, next_obs, nxt.sample()))
            v_next = sampled_soft_value(q_next, nxt.entropy_dims(), self.target_alpha())
            targets = sub_q_targets(
                batch["rewards"], batch["terminated"], self.cfg.gamma, v_next[:, None]
            )[:, 0]
        q_taken = self._twins(self.up_q, obs, actions)
        q_loss = sum((q - targets).pow(2).mean() for q in q_taken)
        return q_loss, [], q_taken[0].detach()  # type: ignore[return-value]

    def counterfactual_sub_q(self, twins: nn.ModuleList, obs: Tensor, sample: Tensor) -> Tensor:
        """Sub-Qs read off a joint critic, ``[B, k, max_n]``: the twin minimum of ``Q(s,
        a)`` with dimension i set to each of its values and the others at ``sample``, one
        action from the policy per state. In expectation over the sample that is the paper's
        sub-Q ``E_{a^-i ~ pi^-i}[Q(s, a^i, a^-i)]``."""
        b, k = sample.shape
        n = self.space.max_size
        rows = counterfactual_actions(sample, self.size_tensor, n).reshape(-1, k)
        obs_rows = obs.repeat_interleave(k * n, 0)
        # on a CPU, passes of at most CPU_ROWS rows, whose activations stay in cache
        # (benchmarks/critic_rows.py); one pass on a GPU
        size = len(rows) if self.device.type == "cuda" else max(CPU_ROWS // (k * n), 1) * k * n
        parts = [
            twin_min(self._twins(twins, o, r))
            for o, r in zip(obs_rows.split(size), rows.split(size), strict=True)
        ]
        return torch.cat(parts).view(b, k, n)

    def independent_policy_loss(
        self, obs: Tensor, q_all: list[Tensor], alpha: Tensor
    ) -> tuple[Tensor, FactoredDistribution]:
        """Equation 11 for every dimension against the twin minimum of the critics' outputs
        ``q_all`` at ``obs`` (the pairwise critic's sub-Qs with their pair terms in
        expectation over the other dimensions' current policies), summed over dimensions and
        averaged over the batch; also the policy at ``obs``. The joint critic's sub-Qs are
        read off it instead, on the batch's first ``sub_q_states`` states."""
        dist = self.policy(obs)
        if self.full_q:
            m = min(self.cfg.sub_q_states, obs.shape[0])
            with torch.no_grad():
                q_now = self.counterfactual_sub_q(self.up_q, obs[:m], dist.sample()[:m])
        else:
            probs_now = dist.probs.detach()
            q_now = twin_min([self.sub_q_values(q.detach(), probs_now, 1.0) for q in q_all])
        m = q_now.shape[0]
        log_probs = dist.log_probs0[:m]
        if self.cfg.policy_loss == "forward_kl":
            losses = forward_kl_policy_losses(log_probs, q_now, alpha, self.policy.mask)
        else:
            losses = policy_losses(dist.probs[:m], log_probs, q_now, alpha)
        return losses.mean(0).sum(), dist

    def _update_independent(
        self, obs: Tensor, actions: Tensor, batch: dict[str, Tensor], next_obs: Tensor
    ) -> dict[str, Tensor]:
        alpha = self.log_alpha.exp().detach()
        critic_loss = self.full_critic_loss if self.full_q else self.independent_critic_loss
        q_loss, q_all, q_estimate = critic_loss(obs, actions, batch, next_obs)
        q_grad_norm = self._critic_step(q_loss)
        if self.policy_optimizer is None:  # the Boltzmann policy: nothing to learn
            q_min = twin_min([q.detach() for q in q_all])
            dist = boltzmann_policy(q_min, alpha, self.policy.mask, self.policy.dense)
            policy_loss = alpha.new_tensor(np.nan)
        else:
            policy_loss, dist = self.independent_policy_loss(obs, q_all, alpha)
            self._step(self.policy_optimizer, policy_loss)
        # temperatures: eq. 13 towards beta log n_i
        alpha_loss = (
            temperature_losses(
                dist.probs.detach(), dist.log_probs0.detach(), self.log_alpha, self.target_entropy
            )
            .mean(0)
            .sum()
        )
        self._step(self.alpha_optimizer, alpha_loss)
        return {
            "q_loss": q_loss.detach(),
            # a diverging critic: its values running away upwards, or only its errors growing
            "q_mean": q_estimate.mean(),
            "q_grad_norm": q_grad_norm,
            "policy_loss": policy_loss.detach(),
            "alpha": alpha.mean(),
            "entropy": dist.entropy().mean().detach(),
            **per_head(alpha, dist.entropy_dims().detach()),
        }

    def top_alpha(self) -> Tensor | None:
        """The top MDP's temperature: learned (eq. 12), the mean of the per-head ones
        (``tied``), or None where each head's own temperature weighs its term (``heads``).

        Nothing in the policy's update feeds back on a learned top temperature, and on
        Platform it can grow without bound (see the README); tying it to the per-head
        temperatures, or weighting each head by its own, keeps the top MDP's soft value
        equal to the bottom MDP's chain of them.
        """
        if self.cfg.top_alpha == "tied":
            return self.log_alpha.exp().mean().detach()
        if self.cfg.top_alpha == "heads":
            return None
        return self.log_alpha_global.exp().detach()

    def target_alpha(self) -> Tensor:
        """The per-head temperatures inside the critics' targets: zero when decoupled."""
        alpha = self.log_alpha.exp().detach()
        return alpha if self.cfg.entropy_in_targets else torch.zeros_like(alpha)

    def autoregressive_critic_losses(
        self,
        obs: Tensor,
        actions: Tensor,
        batch: dict[str, Tensor],
        next_obs: Tensor,
        dist: FactoredDistribution | None = None,
    ) -> dict[str, Tensor]:
        """Equations 9, 10 and 5 for the twin sub-Qs and up-Qs, summed over the twins.

        ``dist`` is the policy at ``obs`` when the caller has it already (one torso pass).
        """
        cfg = self.cfg
        alpha = self.target_alpha()
        dist = self.policy(obs) if dist is None else dist
        with torch.no_grad():
            # eq. 9: V^{i+1}(u^i) along the stored action's prefixes, from the target sub-Qs
            along = dist.conditionals(actions)
            q_sub_t = twin_min(self._twins(self.sub_q_target, obs, actions))
            v_heads = soft_values(along.probs, along.log_probs0, q_sub_t, alpha)
            sub_targets = intermediate_targets(v_heads)
            # eqs. 4 and 5: the top MDP's target from one action sampled at s'
            nxt = self.policy(next_obs)
            a_next = nxt.sample()
            q_up_next = twin_min(self._twins(self.up_q_target, next_obs, a_next))
            entropy_next = top_entropy_term(
                nxt.conditionals(a_next).log_prob_dims(a_next),
                alpha, self.top_alpha(), cfg.entropy_in_targets,
            )  # fmt: skip
            up_targets = up_q_target(
                batch["rewards"], batch["terminated"], cfg.gamma, q_up_next, entropy_next
            )
        index = actions.unsqueeze(-1)
        q_up = self._twins(self.up_q, obs, actions)
        # eq. 10: the last sub-Q tracks the up Q-value of the stored action (no gradient to it)
        consistency_target = twin_min(q_up).detach()
        sub_loss = up_loss = consistency_loss = torch.zeros((), device=obs.device)
        for q, q_up_taken in zip(self._twins(self.sub_q, obs, actions), q_up, strict=True):
            q_taken = q.gather(-1, index).squeeze(-1)  # Q^i(u^{i-1}, a^i)
            sub_loss = sub_loss + (q_taken[:, :-1] - sub_targets).pow(2).mean(0).sum()
            consistency_loss = (
                consistency_loss + (q_taken[:, -1] - consistency_target).pow(2).mean()
            )
            up_loss = up_loss + (q_up_taken - up_targets).pow(2).mean()
        return {"sub": sub_loss, "consistency": consistency_loss, "up": up_loss}

    def _update_autoregressive(
        self, obs: Tensor, actions: Tensor, batch: dict[str, Tensor], next_obs: Tensor
    ) -> dict[str, Tensor]:
        alpha, alpha_global = self.log_alpha.exp().detach(), self.top_alpha()
        dist = self.policy(obs)  # one torso pass for the critic targets and the policy loss
        losses = self.autoregressive_critic_losses(obs, actions, batch, next_obs, dist)
        # keep the graph: compiled, the policy's torso pass (which the policy loss below
        # backpropagates through) is one autograd node with the critic losses
        critic_loss = losses["sub"] + losses["consistency"] + losses["up"]
        q_grad_norm = self._critic_step(critic_loss, keep=True)
        sub_loss, consistency_loss, up_loss = losses["sub"], losses["consistency"], losses["up"]
        # policy: eq. 11 on intermediate states of a sequence re-sampled from the current
        # policy (section 4.1: replayed sequences would bias the entropy terms)
        resampled = dist.sample()
        heads = dist.conditionals(resampled)  # carries gradients: logits from the sampling pass
        with torch.no_grad():
            q_sub = twin_min(self._twins(self.sub_q, obs, resampled))
        policy_loss = policy_losses(heads.probs, heads.log_probs0, q_sub, alpha).mean(0).sum()
        assert self.policy_optimizer is not None  # an autoregressive policy is a network
        self._step(self.policy_optimizer, policy_loss)
        # temperatures: eq. 13 per head on the re-sampled intermediate states, eq. 12 overall
        probs, log_probs = heads.probs.detach(), heads.log_probs0.detach()
        log_prob = heads.log_prob(resampled).detach()
        alpha_loss = (
            temperature_losses(probs, log_probs, self.log_alpha, self.target_entropy).mean(0).sum()
        )
        if self.cfg.top_alpha == "learned":
            alpha_loss = (
                alpha_loss
                + global_temperature_loss(
                    self.log_alpha_global, log_prob, self.target_entropy_global
                ).mean()
            )
        self._step(self.alpha_optimizer, alpha_loss)
        return {
            "q_loss": sub_loss.detach(),
            "q_grad_norm": q_grad_norm,
            "policy_loss": policy_loss.detach(),
            "alpha": alpha.mean(),
            "entropy": -log_prob.mean(),
            "up_q_loss": up_loss.detach(),
            "consistency_loss": consistency_loss.detach(),
            "alpha_global": alpha_global if alpha_global is not None else alpha.new_tensor(np.nan),
            **per_head(alpha, heads.entropy_dims().detach()),  # along re-sampled sequences
        }

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, temperatures, optimizers, counters; the replay buffer's
        transitions only with ``save_buffer``."""
        return {
            **self.module_states(),
            "log_alpha": self.log_alpha.detach().clone(),
            "log_alpha_global": self.log_alpha_global.detach().clone(),
            "buffer": self.buffer.state_dict(include_data=self.save_buffer),
            "rng": self.rng.bit_generator.state,
            "steps": self.steps,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.load_module_states(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
            self.log_alpha_global.copy_(state["log_alpha_global"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["rng"]
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
