"""The same computations on a CUDA device as on the CPU (runs only where PyTorch sees a GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from farl_cli.agents import make_agent
from farl_cli.config import load_preset
from farl_cli.training import probe_env, restore, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CLOSE = {"rtol": 1e-4, "atol": 1e-5}


def _twins(preset_name: str) -> tuple[Any, Any]:
    """The same agent (same initial weights) on the CPU and on the GPU."""
    preset = load_preset(preset_name)
    obs_dim, space = probe_env(preset.env)
    torch.manual_seed(0)
    cpu = make_agent(preset, obs_dim, space, torch.device("cpu"))
    torch.manual_seed(0)
    gpu = make_agent(preset, obs_dim, space, torch.device("cuda"))
    return cpu, gpu


def _batch(agent: Any, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs_dim = agent.buffer.obs.shape[1]
    actions = [torch.randint(0, s, (n,), generator=g) for s in agent.space.sizes]
    return {
        "obs": torch.randn(n, obs_dim, generator=g),
        "next_obs": torch.randn(n, obs_dim, generator=g),
        "actions": torch.stack(actions, dim=1),
        "rewards": torch.randn(n, generator=g),
        "terminated": torch.rand(n, generator=g) < 0.1,
    }


def test_independent_fsac_update_on_cuda_matches_the_cpu() -> None:
    cpu, gpu = _twins("hopper-fsac")  # its update draws nothing at random
    batch = _batch(cpu, cpu.cfg.batch_size)
    on_cpu = cpu.update(batch)
    on_gpu = gpu.update({k: v.cuda() for k, v in batch.items()})
    for key in ("q_loss", "policy_loss", "entropy", "alpha"):
        torch.testing.assert_close(on_gpu[key].cpu(), on_cpu[key], **CLOSE)
    for module in ("policy", "sub_q", "sub_q_target"):
        a, b = getattr(cpu, module).state_dict(), getattr(gpu, module).state_dict()
        for name in a:
            torch.testing.assert_close(b[name].cpu(), a[name], **CLOSE, msg=name)


def test_fppo_policy_and_value_on_cuda_match_the_cpu() -> None:
    cpu, gpu = _twins("platform-fppo")
    obs = torch.randn(64, cpu.buffer.data.obs.shape[-1])
    actions = cpu.policy(obs).sample()
    d_cpu = cpu.policy(obs).conditionals(actions)
    d_gpu = gpu.policy(obs.cuda()).conditionals(actions.cuda())
    torch.testing.assert_close(d_gpu.log_prob(actions.cuda()).cpu(), d_cpu.log_prob(actions))
    torch.testing.assert_close(d_gpu.entropy_dims().cpu(), d_cpu.entropy_dims(), **CLOSE)
    torch.testing.assert_close(gpu.value(obs.cuda()).cpu(), cpu.value(obs), **CLOSE)


def test_a_run_on_cuda_writes_checkpoints_that_load_on_the_cpu(tmp_path: Path) -> None:
    preset = load_preset(
        "platform-fsac",
        ["train.total_steps=600", "agent.learning_starts=300", "train.eval_every=300",
         "train.eval_episodes=2", "train.device=cuda", "train.save_buffer=true"],
    )  # fmt: skip
    result = train(preset, tmp_path / "run")
    assert result.status == "finished"
    on_cpu = restore(result.last_checkpoint, "cpu").agent
    assert next(on_cpu.policy.parameters()).device.type == "cpu"
    assert on_cpu.buffer.size == 600 and on_cpu.buffer.obs.device.type == "cpu"
    assert restore(result.last_checkpoint, "cuda").agent.device.type == "cuda"


def test_the_compiled_update_on_cuda_matches_the_eager_one() -> None:
    preset = load_preset("hopper-fsac")
    obs_dim, space = probe_env(preset.env)
    agents = []
    for compile_update in (False, True):
        torch.manual_seed(0)
        chosen = load_preset("hopper-fsac", [f"train.compile={str(compile_update).lower()}"])
        agents.append(make_agent(chosen, obs_dim, space, torch.device("cuda")))
    eager, graphed = agents
    batch = {k: v.cuda() for k, v in _batch(eager, eager.cfg.batch_size).items()}
    for _ in range(3):  # replays of the captured graph, not only its first run
        a, b = eager.update(batch), graphed.update(batch)
    for key in ("q_loss", "policy_loss", "entropy", "alpha"):
        torch.testing.assert_close(b[key], a[key], **CLOSE)
