"""A run's life: unique directories, resume in place or forked, refusals, crash recovery."""

from __future__ import annotations

import csv
import errno
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from farl_cli.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from farl_cli.config import load_preset
from farl_cli.runs import (
    FIXED_ON_RESUME,
    RunError,
    _check_fixed_keys,
    _flat,
    machine,
    make_run_dir,
    newest_checkpoint,
    plan_resume,
)
from farl_cli.training import resume, train

TINY = [
    "env.num_envs=2",
    "agent.rollout_steps=64",
    "agent.minibatch_size=32",
    "agent.epochs=1",
    "train.eval_every=128",
    "train.eval_episodes=2",
    "train.checkpoint_every=128",
    "train.log_every=64",
]


def steps_of(metrics: Path) -> list[int]:
    with metrics.open() as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 256-step Platform run with checkpoints at 128 and 256."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(load_preset("platform-fppo", [*TINY, "train.total_steps=256"]), run_dir)
    return run_dir


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_runs_started_in_the_same_second_get_directories_of_their_own(tmp_path: Path) -> None:
    base = tmp_path / "runs" / "platform-fppo" / "20260101-000000-seed0"
    first, second, third = (make_run_dir(base) for _ in range(3))
    assert first == base
    assert second.name == f"{base.name}-2" and third.name == f"{base.name}-3"
    assert all(p.is_dir() for p in (first, second, third))


def test_resuming_an_older_checkpoint_forks_and_leaves_the_original_alone(
    finished: Path, tmp_path: Path
) -> None:
    original = copy_run(finished, tmp_path / "runs" / "p" / "orig")
    before = {p.name: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    result = resume(original / "checkpoints" / "step-128.pt", overrides=["train.total_steps=192"])
    assert result.run_dir != original and result.run_dir.parent == original.parent
    assert {p.name: p.read_bytes() for p in original.rglob("*") if p.is_file()} == before
    steps = steps_of(result.metrics_path)
    assert steps == sorted(set(steps)) and steps[-1] == 192  # copied up to 128, then continued
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["parent"]["step"] == 128
    assert record["parent"]["checkpoint"].endswith("step-128.pt")


def test_a_checkpoint_kept_outside_its_run_forks_under_runs(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    kept = tmp_path / "kept" / "mine.pt"
    kept.parent.mkdir()
    shutil.copy(finished / "checkpoints" / "last.pt", kept)
    monkeypatch.chdir(tmp_path)
    plan = plan_resume(kept, None, [], None)
    assert plan.parent == kept
    assert plan.run_dir.resolve().parent == (tmp_path / "runs" / "platform-fppo").resolve()
    assert not (plan.run_dir / "metrics.csv").exists()


def test_resuming_the_newest_checkpoint_continues_in_place_and_logs_no_step_twice(
    finished: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    # as after kill -9 right after step 256's rows were logged but before its checkpoint
    for name in ("step-256.pt", "last.pt", "best.pt"):
        (run_dir / "checkpoints" / name).unlink()
    (run_dir / "checkpoints" / ".step-256.pt.x1y2.tmp").write_bytes(b"partial")
    assert newest_checkpoint(run_dir) == run_dir / "checkpoints" / "step-128.pt"
    assert max(steps_of(run_dir / "metrics.csv")) == 256
    result = resume(run_dir / "checkpoints" / "step-128.pt")
    assert result.run_dir == run_dir
    steps = steps_of(result.metrics_path)
    assert steps == sorted(set(steps)) and steps[-1] == 256
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # strays cleaned at start
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["counters"]["global_step"] == 256


def test_last_pt_exists_from_the_first_periodic_checkpoint_on(finished: Path) -> None:
    index = json.loads((finished / "checkpoints" / "index.json").read_text())
    assert index["last.pt"] == index["step-256.pt"] == 256
    assert (finished / "checkpoints" / "last.pt").samefile(finished / "checkpoints" / "step-256.pt")


@pytest.mark.parametrize(
    ("preset", "sets", "message"),
    [
        ("hopper-fsac", [], "--preset hopper-fsac contradicts"),
        (None, ["agent.hidden_sizes=[64, 64]"], "agent.hidden_sizes=\\[64, 64\\] contradicts"),
        (None, ["env.bins=11"], "env.bins=11 contradicts"),
        (None, ["train.seed=3"], "train.seed=3 contradicts"),
    ],
)
def test_resume_refuses_what_contradicts_the_checkpoint(
    finished: Path, preset: str | None, sets: list[str], message: str
) -> None:
    with pytest.raises(RunError, match=message):
        plan_resume(finished / "checkpoints" / "last.pt", preset, sets, None)


def test_resume_records_the_overrides_it_allows(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    sets = ["agent.learning_rate=1e-4", "train.total_steps=320"]
    plan = plan_resume(run_dir / "checkpoints" / "last.pt", "platform-fppo", sets, None)
    assert plan.run_dir == run_dir and plan.preset.agent.learning_rate == 1e-4
    result = resume(run_dir / "checkpoints" / "last.pt", overrides=sets)
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["resumes"][-1] == {
        "at": record["resumes"][-1]["at"],
        "step": 256,
        "overrides": sets,
        "machine": machine(),
    }
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["machine"]["mujoco"] == metadata.version("mujoco")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "cpu family" in cpuinfo.read_text():  # x86 Linux: two CPUs of
        assert "?" not in record["machine"]["cpu_model"]  # one name differ in these numbers
    # the new rate is the one the optimizer ran with, not the checkpoint's
    saved = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert [g["lr"] for g in saved["agent"]["optimizer"]["param_groups"]] == [1e-4]


def test_an_unwritable_run_directory_is_one_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=64"])
    for where in (blocker / "run", Path("/proc/farl-run"), Path("/sys/farl-run")):
        with pytest.raises(RunError, match="cannot create the run directory"):
            train(preset, where)
    with pytest.raises(RunError, match="a file is in the way"):
        train(preset, blocker)


def test_a_failed_checkpoint_write_stops_the_run_and_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import farl_cli.runs as runs

    calls = {"n": 0}

    def disk_fills_up(path: Path, payload: dict) -> Path:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_checkpoint(path, payload)

    monkeypatch.setattr(runs, "save_checkpoint", disk_fills_up)
    preset = load_preset("platform-fppo", [*TINY, "train.total_steps=512"])
    with pytest.raises(RunError, match="No space left on device; the last good checkpoint is"):
        train(preset, tmp_path / "run")
    good = newest_checkpoint(tmp_path / "run")
    assert good is not None and load_checkpoint(good)["counters"]["global_step"] == 128


def corrupt(finished: Path, tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    run_dir = copy_run(finished, tmp_path / "run")
    path = run_dir / "checkpoints" / "last.pt"
    data = load_checkpoint(path)
    change(data)
    save_checkpoint(path, {k: v for k, v in data.items() if not k.startswith(("format", "farl_"))})
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["counters"].pop("global_step"), "counters are missing"),
        (lambda d: d["counters"].update(global_step="12"), "counters.global_step must be"),
        (lambda d: d["rng"].update(torch=torch.zeros(3)), "rng.torch is not"),
        (lambda d: d["rng"].update(envs=[{"state": 1}]), "rng.envs\\[0\\] is not"),
        (
            lambda d: d["agent"]["policy"].update(
                {k: torch.zeros(2, 2) for k in list(d["agent"]["policy"])[:1]}
            ),
            "weights do not fit",
        ),
        (
            lambda d: next(iter(d["agent"]["value"].values())).fill_(float("nan")),
            "NaN or infinite",
        ),
    ],
)
def test_every_restored_field_is_checked(
    finished: Path,
    tmp_path: Path,
    change,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    path = corrupt(finished, tmp_path, change)
    with pytest.raises(CheckpointError, match=message):
        resume(path)


def test_a_run_that_ends_before_learning_starts_says_so(tmp_path: Path) -> None:
    preset = load_preset(
        "platform-fsac",
        ["agent.learning_starts=500", "train.total_steps=100", "train.eval_every=1000"],
    )
    result = train(preset, tmp_path / "run")
    assert result.warnings and "before the agent learned anything" in result.warnings[0]
    assert "learning_starts is 500" in result.warnings[0]
    assert result.buffer_saved is False
    plan = plan_resume(result.last_checkpoint, None, ["train.total_steps=200"], None)
    assert plan.notes and "collects 500 uniform steps again" in plan.notes[0]


def test_sigkill_at_random_moments_leaves_loadable_checkpoints_and_a_resumable_run(
    tmp_path: Path,
) -> None:
    """20 SIGKILLs, some during checkpoint writes: every checkpoint left loads, the run
    resumes from its newest one, and metrics.csv never holds a step twice."""
    import os
    import random
    import shutil
    import signal
    import time

    from helpers import start_farl

    run_dir = tmp_path / "run"
    settings = [
        "--set", "env.num_envs=2", "--set", "agent.rollout_steps=64",
        "--set", "agent.minibatch_size=64", "--set", "agent.epochs=1",
        "--set", "train.checkpoint_every=64", "--set", "train.eval_every=512",
        "--set", "train.eval_episodes=2", "--set", "train.log_every=32",
    ]  # fmt: skip
    fresh = ["train", "--preset", "platform-fppo", *settings, "--total-steps", "64000",
             "--quiet", "--run-dir", str(run_dir)]  # fmt: skip
    rng = random.Random(7)
    resumed = 0

    def rows() -> int:
        try:
            return len((run_dir / "metrics.csv").read_text().splitlines())
        except FileNotFoundError:
            return 0

    for round_ in range(20):
        newest = newest_checkpoint(run_dir) if run_dir.exists() else None
        if newest is None:  # killed before its first checkpoint: nothing to keep
            shutil.rmtree(run_dir, ignore_errors=True)
            proc = start_farl(*fresh)
        else:
            proc = start_farl("train", "--resume", str(newest), "--quiet")
            resumed += 1
        if round_ == 0:
            time.sleep(0.5)  # during start-up, before anything is written
        else:  # once training is under way, at a random moment (checkpoints every 64 steps)
            before, deadline = rows(), time.time() + 120
            while rows() <= before + 1 and time.time() < deadline and proc.poll() is None:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err  # it was killed, not failed
        for path in (run_dir / "checkpoints").glob("*.pt"):
            load_checkpoint(path)  # raises if any is torn
    assert resumed >= 15  # rounds after the first got far enough to leave a checkpoint
    newest = newest_checkpoint(run_dir)
    assert newest is not None
    end = load_checkpoint(newest)["counters"]["global_step"] + 128
    done = start_farl("train", "--resume", str(newest), "--total-steps", str(end), "--quiet")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    steps = steps_of(run_dir / "metrics.csv")
    assert steps == sorted(set(steps)) and steps[-1] == end
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize(
    "setting",
    [
        "agent.critic_layer_norm=true",
        "agent.buffer_size=50000",
        "agent.normalize_observations=true",
        "agent.activation=tanh",
        "agent.critic=pairwise",
        "agent.pair_rank=4",
        "agent.actor=boltzmann",
        "agent.policy_degree=2",
        "agent.policy_ordinal=true",
    ],
)
def test_resume_refuses_to_reshape_an_fsac_run(setting: str) -> None:
    saved = load_preset("hopper-fsac")
    with pytest.raises(RunError, match=f"{setting.split('=')[0]}=.* contradicts"):
        _check_fixed_keys(Path("last.pt"), saved, load_preset("hopper-fsac", [setting]))
    # named settings are fixed, not every setting whose name starts with one of them
    allowed = ["agent.tau=0.01", "agent.critic_max_grad_norm=10"]
    _check_fixed_keys(Path("last.pt"), saved, load_preset("hopper-fsac", allowed))


def test_every_fixed_key_names_a_setting_of_some_preset() -> None:
    # a renamed setting would otherwise leave its FIXED_ON_RESUME entry matching nothing
    names = {
        key
        for preset in ("platform-fppo", "hopper-fsac")
        for key in _flat(load_preset(preset).model_dump(mode="json"))
    }
    for fixed in FIXED_ON_RESUME:
        section = fixed.endswith(".")
        assert any(name == fixed or (section and name.startswith(fixed)) for name in names), fixed
