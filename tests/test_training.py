"""The training loop: reproducible, interruptible, resumable."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from farl_cli.checkpoint import load_checkpoint, named_tensors, save_checkpoint
from farl_cli.config import load_preset
from farl_cli.training import StopRequest, restore, resume, train

TINY = [
    "env.num_envs=2",
    "agent.rollout_steps=64",
    "agent.minibatch_size=32",
    "agent.epochs=2",
    "train.eval_every=128",
    "train.eval_episodes=4",
    "train.checkpoint_every=128",
    "train.log_every=64",
]
# FSAC that learns from its 100th step on, and keeps its replay buffer in checkpoints
TINY_FSAC = [
    "agent.hidden_sizes=[32, 32]",
    "agent.batch_size=32",
    "agent.learning_starts=100",
    "train.log_every=100",
    "train.save_buffer=true",
]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def learning_columns(path: Path) -> list[tuple[str, ...]]:
    skip = {"wall_time", "steps_per_second"}
    return [tuple(v for k, v in r.items() if k not in skip) for r in rows(path)]


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=256"])
    a = train(preset, tmp_path / "a")
    b = train(preset, tmp_path / "b")
    c = train(
        load_preset("platform-fppo", [*TINY, "train.total_steps=256", "train.seed=1"]),
        tmp_path / "c",
    )
    assert learning_columns(a.metrics_path) == learning_columns(b.metrics_path)
    assert learning_columns(a.metrics_path) != learning_columns(c.metrics_path)
    assert a.status == "finished" and a.global_step == 256
    names = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert names == ["best.pt", "index.json", "last.pt", "step-128.pt", "step-256.pt"]
    assert (tmp_path / "a" / "preset.yaml").read_text() == preset.to_yaml()


def test_interrupt_saves_and_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=512"])
    stop = StopRequest()

    def interrupt_after_first_update(step: int, sps: float, row: dict) -> None:
        if step >= 128:
            stop.signal = "SIGINT"

    first = train(preset, tmp_path / "run", stop=stop, on_progress=interrupt_after_first_update)
    assert first.status == "interrupted" and first.global_step == 128
    saved = load_checkpoint(first.last_checkpoint)
    assert saved["counters"]["global_step"] == 128
    assert "optimizer" in saved["agent"] and "normalizer" in saved["agent"]

    second = resume(first.last_checkpoint)
    assert second.status == "finished" and second.global_step == 512
    steps = [int(r["step"]) for r in rows(second.metrics_path)]
    assert steps == sorted(steps) and steps[-1] == 512 and steps[0] == 64  # appended
    assert load_checkpoint(second.last_checkpoint)["counters"]["resumes"] == 1
    assert load_checkpoint(second.last_checkpoint)["agent"]["updates"] == 8


def test_restore_rebuilds_the_agent_from_the_checkpoint_alone(tmp_path: Path) -> None:
    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=64"])
    result = train(preset, tmp_path / "r")
    restored = restore(result.last_checkpoint)
    assert restored.preset == preset and restored.space.sizes == (3, 21)


def test_a_checkpoint_older_than_evenly_spaced_values_learns_it_from_its_env(
    tmp_path: Path,
) -> None:
    sets = ["env.num_envs=2", "agent.rollout_steps=128", "agent.epochs=1", "train.total_steps=128"]
    result = train(load_preset("hopper-fppo", [*sets, "train.eval_episodes=1"]), tmp_path / "r")
    data = load_checkpoint(result.last_checkpoint)
    del data["space"]["evenly_spaced"]  # as spaces were saved before they said it
    old = save_checkpoint(tmp_path / "old.pt", data)
    restored = restore(old)
    assert restored.space.evenly_spaced
    actions = restored.actor(True, "mean")(np.zeros((2, restored.obs_dim)))
    assert actions.shape == (2, 3) and ((actions >= 0) & (actions < 11)).all()


def test_a_run_directory_holding_a_run_is_not_reused_by_accident(tmp_path: Path) -> None:
    from farl_cli.errors import FarlError

    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=64"])
    train(preset, tmp_path / "r")
    with pytest.raises(
        FarlError, match="already holds a run; continue it with: farl train --resume"
    ):
        train(preset, tmp_path / "r")


def test_async_envs_in_worker_processes_train_and_resume(tmp_path: Path) -> None:
    preset = load_preset("platform-fppo", [*TINY, "env.vector=async", "train.total_steps=128"])
    first = train(preset, tmp_path / "a")
    assert first.status == "finished"
    saved = load_checkpoint(first.last_checkpoint)
    assert len(saved["rng"]["envs"]) == 2  # each worker's generator state came back
    second = resume(first.last_checkpoint, overrides=["train.total_steps=256"])
    assert second.status == "finished" and second.global_step == 256


FSAC_TINY = [
    "agent.hidden_sizes=[32, 32]",
    "agent.batch_size=32",
    "agent.learning_starts=100",
    "train.eval_every=200",
    "train.eval_episodes=3",
    "train.log_every=100",
    "train.checkpoint_every=1000",
]


def test_fsac_resume_with_the_saved_replay_buffer(tmp_path: Path) -> None:
    import numpy as np

    preset = load_preset(
        "platform-fsac", [*FSAC_TINY, "train.total_steps=300", "train.save_buffer=true"]
    )
    first = train(preset, tmp_path / "f")
    saved = load_checkpoint(first.last_checkpoint)
    buffer = saved["agent"]["buffer"]
    assert buffer["has_data"] and buffer["size"] == 300
    restored = restore(first.last_checkpoint).agent
    assert restored.buffer.size == 300 and restored.updates == saved["agent"]["updates"]
    assert np.array_equal(restored.buffer.obs[:300], buffer["obs"].numpy())
    # without --save-buffer the checkpoint holds no transitions, so it stays small
    slim = train(
        load_preset("platform-fsac", [*FSAC_TINY, "train.total_steps=300"]), tmp_path / "s"
    )
    assert not load_checkpoint(slim.last_checkpoint)["agent"]["buffer"]["has_data"]
    assert slim.last_checkpoint.stat().st_size < first.last_checkpoint.stat().st_size
    # the resumed run learns from the restored buffer at once: no second learning_starts
    second = resume(first.last_checkpoint, overrides=["train.total_steps=340"])
    after = load_checkpoint(second.last_checkpoint)["agent"]
    assert after["updates"] == saved["agent"]["updates"] + 40
    assert after["buffer"]["size"] == 340


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an agent's state, by name."""
    return named_tensors(load_checkpoint(checkpoint)["agent"])


@pytest.mark.parametrize(
    ("preset_name", "sets", "split", "total"),
    [
        # FPPO stopped mid-rollout (300 is not a multiple of the 128-step rollout)
        ("platform-fppo", [*TINY[1:], "env.num_envs=2", "agent.rollout_steps=128"], 300, 640),
        (
            "platform-fsac",
            [*TINY_FSAC, "train.eval_episodes=2"],
            300,
            500,
        ),
        (  # independent FSAC on the MuJoCo task whose reward reads derived simulator data
            "humanoid-fsac",
            [*TINY_FSAC, "train.eval_episodes=1"],
            300,
            500,
        ),
        (  # no policy network: the policy is read off the critics that the checkpoint holds
            "hopper-fsac",
            [*TINY_FSAC, "train.eval_episodes=1", "agent.actor=boltzmann"],
            300,
            500,
        ),
        (  # the joint critic samples actions inside every update
            "hopper-fsac",
            [*TINY_FSAC, "train.eval_episodes=1", "agent.critic=joint", "agent.sub_q_states=8"],
            300,
            500,
        ),
        (
            "hopper-fppo",
            [
                "env.num_envs=2",
                "agent.rollout_steps=128",
                "agent.minibatch_size=64",
                "agent.epochs=1",
                "agent.hidden_sizes=[32, 32]",
                "train.eval_episodes=1",
                "train.log_every=100",
            ],
            300,
            640,
        ),
    ],
)
def test_a_run_split_at_a_checkpoint_ends_with_the_same_weights_bit_for_bit(
    tmp_path: Path, preset_name: str, sets: list[str], split: int, total: int
) -> None:
    cadence = [f"train.eval_every={split}", "train.checkpoint_every=100000"]
    preset = load_preset(preset_name, [*sets, *cadence, f"train.total_steps={total}"])
    whole = train(preset, tmp_path / "whole")
    stop = StopRequest()

    def stop_at_split(step: int, sps: float, row: dict) -> None:
        if step >= split:
            stop.signal = "SIGINT"

    first = train(preset, tmp_path / "split", stop=stop, on_progress=stop_at_split)
    assert first.status == "interrupted" and first.global_step == split
    assert "episodes" in load_checkpoint(first.last_checkpoint)  # the envs were snapshotted
    second = resume(first.last_checkpoint)
    assert second.global_step == whole.global_step == total
    a, b = weights(whole.last_checkpoint), weights(second.last_checkpoint)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
