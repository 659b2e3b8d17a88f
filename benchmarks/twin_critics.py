"""Twin critics one after the other or as one batched computation: the time of each.

FSAC keeps two critics and takes their minimum. Eager, farl calls one and then the other;
compiled, it evaluates both as one computation over their stacked parameters
(``torch.func.vmap``). This times a forward and backward pass of both sub-Q critics of a
preset's agent, each way, without compiling, one thread, on the CPU (or ``--device``), and
appends the figures to ``benchmarks/results/twin_critics.csv`` with the commit and command.

    python benchmarks/twin_critics.py --preset halfcheetah-fsac
"""

from __future__ import annotations

import argparse
import time

import torch
from common import RESULTS, append_row, run_stamp, shown

from farl_cli.agents import make_agent
from farl_cli.agents.fsac import FSACAgent, twin_outputs
from farl_cli.config import load_preset
from farl_cli.training import probe_env


def per_pass_ms(agent: FSACAgent, batched: bool, repeats: int) -> float:
    """Milliseconds for one forward and backward pass of both sub-Q critics."""
    n = agent.cfg.batch_size
    obs = torch.randn(n, agent.buffer.obs.shape[1], device=agent.device)
    actions = torch.stack(
        [torch.randint(0, s, (n,), device=agent.device) for s in agent.space.sizes], 1
    )
    inputs = (obs, actions) if agent.autoregressive else (obs,)

    def once() -> None:
        outputs = twin_outputs(agent.sub_q, *inputs, batched=batched)
        sum(q.square().mean() for q in outputs).backward()

    for _ in range(20):
        once()
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        once()
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - started) / repeats


def main() -> None:
    """Time both ways, alternating, and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="halfcheetah-fsac")
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="each way, alternating")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    stamp = run_stamp("benchmarks/twin_critics.py")
    torch.set_num_threads(1)
    preset = load_preset(args.preset, [f"train.device={args.device}"])
    obs_dim, space = probe_env(preset.env)
    agent = make_agent(preset, obs_dim, space, torch.device(args.device))
    assert isinstance(agent, FSACAgent), f"{args.preset} is not an FSAC preset"
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for batched in (False, True):
            times[batched].append(per_pass_ms(agent, batched, args.repeats))
    one_by_one, batched = min(times[False]), min(times[True])
    print(f"{args.preset} on {args.device}: both critics' forward and backward pass")
    print(f"  one twin after the other: {one_by_one:.3f} ms (best of {args.rounds})")
    print(f"  batched (vmap):           {batched:.3f} ms; ratio {one_by_one / batched:.2f}x")
    path = RESULTS / "twin_critics.csv"
    append_row(
        path,
        {
            "preset": args.preset,
            "device": args.device,
            "batch": agent.cfg.batch_size,
            "one_by_one_ms": f"{one_by_one:.3f}",
            "batched_ms": f"{batched:.3f}",
            "ratio": f"{one_by_one / batched:.2f}",
            **stamp,
        },
    )
    print(f"saved to {shown(path)}")


if __name__ == "__main__":
    main()
