"""How a critic pass's time per row grows with its rows on a CPU: where CPU_ROWS comes from.

FSAC's joint critic (``agent.critic: joint``) reads each head's sub-Qs off ``Q(s, a)`` at
``sum_i n_i`` actions per state, thousands of rows at once. On a CPU a pass over more rows
than fit the cache costs more per row; ``farl_cli.agents.fsac.CPU_ROWS`` caps each pass.
This times a forward pass of one joint critic of a preset's agent, without gradients, one
thread, for each number of rows, in one pass and in passes of ``CPU_ROWS``, and appends
the figures to ``benchmarks/results/critic_rows.csv`` with the commit and command.

    python benchmarks/critic_rows.py --preset halfcheetah-fsac
"""

from __future__ import annotations

import argparse
import time

import torch
from common import RESULTS, append_row, run_stamp, shown

from farl_cli.agents import make_agent
from farl_cli.agents.fsac import CPU_ROWS, FSACAgent
from farl_cli.config import load_preset
from farl_cli.training import probe_env


def per_row_us(agent: FSACAgent, rows: int, size: int, repeats: int) -> float:
    """Microseconds per row of one critic's forward pass over ``rows`` rows, ``size`` at a
    time; the best of three rounds."""
    obs = torch.randn(rows, agent.buffer.obs.shape[1])
    actions = torch.stack([torch.randint(0, s, (rows,)) for s in agent.space.sizes], 1)
    critic = agent.up_q[0]
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            for o, a in zip(obs.split(size), actions.split(size), strict=True):
                critic(o, a)
            started = time.perf_counter()
            for _ in range(repeats):
                for o, a in zip(obs.split(size), actions.split(size), strict=True):
                    critic(o, a)
            best = min(best, (time.perf_counter() - started) / repeats)
    return 1e6 * best / rows


def main() -> None:
    """Time each number of rows both ways and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="halfcheetah-fsac")
    parser.add_argument("--rows", type=int, nargs="+", default=[256, 512, 1024, 2048, 4224])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/critic_rows.py")
    torch.set_num_threads(1)
    preset = load_preset(args.preset, ["agent.critic=joint", "train.device=cpu"])
    obs_dim, space = probe_env(preset.env)
    agent = make_agent(preset, obs_dim, space, torch.device("cpu"))
    assert isinstance(agent, FSACAgent), f"{args.preset} is not an FSAC preset"
    path = RESULTS / "critic_rows.csv"
    print(f"{args.preset}, joint critic, forward pass, us per row (one pass | {CPU_ROWS} a pass)")
    for rows in args.rows:
        whole = per_row_us(agent, rows, rows, args.repeats)
        capped = per_row_us(agent, rows, CPU_ROWS, args.repeats)
        print(f"  {rows:>6} rows: {whole:6.2f} | {capped:6.2f}")
        append_row(
            path,
            {
                "preset": args.preset,
                "rows": rows,
                "one_pass_us_per_row": f"{whole:.2f}",
                "capped_us_per_row": f"{capped:.2f}",
                "cpu_rows": CPU_ROWS,
                **stamp,
            },
        )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
