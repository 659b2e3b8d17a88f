"""The joint critic's sub-Qs read in one pass or in passes of CPU_ROWS rows: the time of each.

FSAC's joint critic (``agent.critic: joint``) reads each head's sub-Qs off ``Q(s, a)`` at
``sum_i n_i`` actions per state and twin, thousands of rows at once. On a CPU farl reads
them in passes of at most ``farl_cli.agents.fsac.CPU_ROWS`` rows. This times the agent's
``counterfactual_sub_q`` (both twins, no gradients, one thread) for each number of states,
both ways, and appends the figures to ``benchmarks/results/critic_rows.csv`` with the
commit and command.

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


def per_call_ms(agent: FSACAgent, states: int, rows: int, repeats: int) -> float:
    """Milliseconds per call of ``counterfactual_sub_q`` on ``states`` states, ``rows`` rows a
    pass; the best of three rounds."""
    fsac.CPU_ROWS = rows
    obs = torch.randn(states, agent.buffer.obs.shape[1])
    sample = torch.stack([torch.randint(0, s, (states,)) for s in agent.space.sizes], 1)
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            agent.counterfactual_sub_q(agent.up_q, obs, sample)
            started = time.perf_counter()
            for _ in range(repeats):
                agent.counterfactual_sub_q(agent.up_q, obs, sample)
            best = min(best, (time.perf_counter() - started) / repeats)
    return 1e3 * best


def main() -> None:
    """Time each number of states both ways and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="halfcheetah-fsac")
    parser.add_argument("--states", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/critic_rows.py")
    torch.set_num_threads(1)
    preset = load_preset(args.preset, ["agent.critic=joint", "train.device=cpu"])
    obs_dim, space = probe_env(preset.env)
    agent = make_agent(preset, obs_dim, space, torch.device("cpu"))
    assert isinstance(agent, FSACAgent), f"{args.preset} is not an FSAC preset"
    path = RESULTS / "critic_rows.csv"
    per_state = sum(space.sizes)
    print(f"{args.preset}: both joint critics' sub-Qs, {per_state} rows per state and twin")
    print(f"  states   rows   one pass   {CPU_ROWS} rows a pass   (ms, best of 3)")
    for states in args.states:
        whole = per_call_ms(agent, states, 10**9, args.repeats)
        capped = per_call_ms(agent, states, CPU_ROWS, args.repeats)
        print(f"  {states:>6} {states * per_state:>6} {whole:10.2f} {capped:18.2f}")
        append_row(
            path,
            {
                "preset": args.preset,
                "states": states,
                "rows": states * per_state,
                "one_pass_ms": f"{whole:.2f}",
                "capped_ms": f"{capped:.2f}",
                "cpu_rows": CPU_ROWS,
                **stamp,
            },
        )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
