"""The joint critic's update with its sub-Qs read in one pass or in passes of CPU_ROWS rows.

FSAC's joint critic (``agent.critic: joint``) reads each head's sub-Qs off ``Q(s, a)`` at
``sum_i n_i`` actions per state and twin, thousands of rows at once. On a CPU farl reads
them in passes of at most ``farl_cli.agents.fsac.CPU_ROWS`` rows. This times one whole
update (critics, policy, temperatures, targets; one thread, on a fixed random batch) of the
preset's own agent and of the joint critic for each ``sub_q_states``, both ways, and
appends the figures to ``benchmarks/results/critic_rows.csv`` with the commit and command.

    python benchmarks/critic_rows.py --preset halfcheetah-fsac
"""

from __future__ import annotations

import argparse
import time

import torch
from common import RESULTS, append_row, run_stamp, shown

from farl_cli.agents import fsac, make_agent
from farl_cli.agents.fsac import CPU_ROWS, FSACAgent
from farl_cli.config import load_preset
from farl_cli.training import probe_env


def per_update_ms(preset_name: str, sets: list[str], rows: int, repeats: int) -> float:
    """Milliseconds per update of a fresh agent, sub-Qs read ``rows`` rows a pass; the best of
    three rounds."""
    fsac.CPU_ROWS = rows
    preset = load_preset(preset_name, [*sets, "train.device=cpu"])
    obs_dim, space = probe_env(preset.env)
    torch.manual_seed(0)
    agent = make_agent(preset, obs_dim, space, torch.device("cpu"))
    assert isinstance(agent, FSACAgent), f"{preset_name} is not an FSAC preset"
    n = agent.cfg.batch_size
    batch = {
        "obs": torch.randn(n, obs_dim),
        "next_obs": torch.randn(n, obs_dim),
        "actions": torch.stack([torch.randint(0, s, (n,)) for s in space.sizes], 1),
        "rewards": torch.randn(n),
        "terminated": torch.rand(n) < 0.1,
    }
    best = float("inf")
    for _ in range(3):
        agent.update(batch)
        started = time.perf_counter()
        for _ in range(repeats):
            agent.update(batch)
        best = min(best, (time.perf_counter() - started) / repeats)
    return 1e3 * best


def main() -> None:
    """Time the preset's update and the joint critic's both ways; save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="halfcheetah-fsac")
    parser.add_argument("--states", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/critic_rows.py")
    torch.set_num_threads(1)
    path = RESULTS / "critic_rows.csv"
    own = per_update_ms(args.preset, [], CPU_ROWS, args.repeats)
    critic = load_preset(args.preset).agent.critic  # type: ignore[union-attr]
    print(f"{args.preset}: one update, ms (best of 3 rounds of {args.repeats})")
    print(f"  the preset's own critic ({critic}): {own:.2f}")
    print(f"  joint critic, sub_q_states: one pass | {CPU_ROWS} rows a pass | capped / preset's")
    for states in args.states:
        sets = ["agent.critic=joint", f"agent.sub_q_states={states}"]
        whole = per_update_ms(args.preset, sets, 10**9, args.repeats)
        capped = per_update_ms(args.preset, sets, CPU_ROWS, args.repeats)
        print(f"  {states:>6}: {whole:8.2f} | {capped:8.2f} | {capped / own:.2f}x")
        append_row(
            path,
            {
                "preset": args.preset,
                "preset_critic": critic,
                "preset_update_ms": f"{own:.2f}",
                "sub_q_states": states,
                "one_pass_ms": f"{whole:.2f}",
                "capped_ms": f"{capped:.2f}",
                "cpu_rows": CPU_ROWS,
                **stamp,
            },
        )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
