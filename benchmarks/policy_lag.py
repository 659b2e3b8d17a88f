"""How far an independent FSAC policy is from the policy its own critic asks for.

Eq. 11 pulls each head ``pi^i`` towards ``softmax(Q^i / alpha_i)``, the Boltzmann policy of
the twin minimum of its sub-Q values (with the pairwise critic, their pair terms in
expectation over the other heads). A head that lags its critic keeps choosing a sub-action
its critic no longer rates best. For each checkpoint this plays the stochastic policy, as
in training, and at the states it visits compares every head with that target: how often
the head's most likely sub-action is the critic's best, the critic's value lost by taking
the head's choice instead of its best, ``KL(softmax(Q^i / alpha_i) || pi^i)``, and both
entropies. Appends a row per checkpoint to ``results/policy_lag.csv`` (with the commit and
the command).

    python benchmarks/policy_lag.py results/runs/<label>/base/seed*/checkpoints/last.pt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import checkpoint_parser, measure_checkpoints

from farl_cli.agents.fsac import FSACAgent, boltzmann_policy, forward_kl_policy_losses, twin_min
from farl_cli.envs import make_factored_env
from farl_cli.errors import FarlError
from farl_cli.training import restore


def visited_states(agent: FSACAgent, env_cfg: object, steps: int, seed: int) -> torch.Tensor:
    """Normalized observations of ``steps`` steps of the stochastic policy."""
    env = make_factored_env(env_cfg)  # type: ignore[arg-type]
    obs, _ = env.reset(seed=seed)
    seen = []
    for _ in range(steps):
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(agent.act(obs[None])[0])
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return agent.normalizer(torch.as_tensor(np.asarray(seen), dtype=torch.float32))


def lag(checkpoint: Path, steps: int, seed: int) -> dict[str, float]:
    """Each measure, averaged over the visited states and the heads."""
    restored = restore(checkpoint, "cpu")
    agent = restored.agent
    if not isinstance(agent, FSACAgent) or agent.autoregressive:
        raise FarlError(
            f"{checkpoint}: policy_lag needs an FSAC run with an independent factorization"
        )
    torch.manual_seed(seed)
    obs = visited_states(agent, restored.preset.env, steps, seed)
    with torch.no_grad():
        dist = agent.policy(obs)
        probs, log_probs = dist.probs, dist.log_probs0
        if agent.full_q:  # a joint critic's sub-Qs, at one action sampled per state
            q = agent.counterfactual_sub_q(agent.up_q, obs, dist.sample())
        else:
            q = twin_min([agent.sub_q_values(twin(obs), probs, 1.0) for twin in agent.sub_q])
        mask, alpha = agent.policy.mask, agent.log_alpha.exp()
        kl = forward_kl_policy_losses(log_probs, q, alpha, mask)
        target = boltzmann_policy(q, alpha, mask, agent.policy.dense)
        best = torch.where(mask, q, -torch.inf).max(-1)
        chosen = probs.argmax(-1, keepdim=True)
        return {
            "agree": float((chosen.squeeze(-1) == best.indices).float().mean()),
            "q_lost": float((best.values - q.gather(-1, chosen).squeeze(-1)).mean()),
            "kl": float(kl.mean()),
            "entropy": float(dist.entropy_dims().mean()),
            # + 0.0: a deterministic target's entropy prints as 0, not -0
            "target_entropy": float(target.entropy_dims().mean()) + 0.0,
        }


def main() -> None:
    """Measure each checkpoint, print a line and save a row for it."""
    parser = checkpoint_parser(__doc__, "policy_lag.csv")
    parser.add_argument("--steps", type=int, default=2000, help="states visited per checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    measure_checkpoints(
        "benchmarks/policy_lag.py",
        args.checkpoints,
        args.out,
        lambda checkpoint: lag(checkpoint, args.steps, args.seed),
        lambda found: (
            f"the head's choice is the critic's best {found['agree']:.0%} of the time, "
            f"{found['q_lost']:.3f} of sub-Q lost per head, KL(target || head) "
            f"{found['kl']:.2f}, entropy {found['entropy']:.3f} (target's "
            f"{found['target_entropy']:.3f}) per head"
        ),
        lambda found: {
            "states": args.steps,
            **{key: round(value, 4) for key, value in found.items()},
        },
    )


if __name__ == "__main__":
    main()
