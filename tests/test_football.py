"""Google Research Football through the adapter, against the real engine.

These tests need the engine (``bash scripts/install-football.sh``, which ``.ci/run`` runs);
without it only the install hint is tested.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import group_members, start_farl
from typer.testing import CliRunner

from farl_cli.cli import app
from farl_cli.envs import gym_id, make_env
from farl_cli.envs.football import ACTION_NAMES, INSTALL_HINT
from farl_cli.envs.wrappers import factorize
from farl_cli.errors import FarlError

HAVE_ENGINE = importlib.util.find_spec("gfootball") is not None
needs_engine = pytest.mark.skipif(
    not HAVE_ENGINE, reason="the football engine is not installed (scripts/install-football.sh)"
)
runner = CliRunner()


def test_without_the_engine_spaces_are_known_and_running_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "gfootball", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "gfootball.env", None)
    env = make_env("football-3v1")  # the spaces are static: no engine needed
    assert env.action_space.nvec.tolist() == [19, 19, 19]
    with pytest.raises(
        FarlError, match=re.escape("install it with: bash scripts/install-football.sh")
    ):
        env.reset(seed=0)
    result = runner.invoke(app, ["inspect-actions", "football-3v1-fppo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["joint_actions"] == 6859
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--preset", "football-3v1-fppo", "--total-steps", "1", "--run-dir",
              str(run_dir)]
    )  # fmt: skip
    assert result.exit_code == 2 and INSTALL_HINT in result.output.replace("\n", "")
    assert not run_dir.exists()  # found out before the run wrote anything


def test_football_names_are_the_scenario_and_the_prefix_family() -> None:
    assert gym_id("football-3v1") == ("farl/Football-3v1-v0", {})
    assert gym_id("football:academy_corner") == ("farl/Football-v0", {"scenario": "academy_corner"})


@needs_engine
def test_spaces_and_action_labels() -> None:
    env = factorize(make_env("football-3v1"))
    try:
        fs = env.factored_space
        assert fs.sizes == (19, 19, 19) and fs.n_joint_actions == 6859
        assert fs.dim_labels == ("player 1", "player 2", "player 3")
        assert fs.value_labels[0] == ACTION_NAMES and "shot" in fs.value_labels[2]
        assert env.observation_space.shape == (115,)
    finally:
        env.close()
    result = runner.invoke(app, ["inspect-actions", "football-3v1-fppo", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["joint_actions"] == 6859 and info["sampling"] == "sequential"
    assert info["dimensions"][1]["values"][12] == "shot"


@needs_engine
def test_reset_and_step_through_the_gymnasium_api() -> None:
    env = make_env("football-3v1")
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (115,) and obs.dtype == np.float32 and info == {}
        assert obs[97:108].sum() == 3  # the three controlled players, the global view
        length = 0
        while True:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            length += 1
            assert isinstance(reward, float) and "is_success" in info
            if terminated or truncated:
                break
        assert 0 < length <= 401  # the engine plays a game_duration of 400, then one more step
    finally:
        env.close()


@needs_engine
def test_a_goal_ends_the_episode_with_reward_one_and_the_success_mark() -> None:
    env = make_env("football-3v1")
    shot = ACTION_NAMES.index("shot")
    right = ACTION_NAMES.index("right")
    try:
        for seed in range(40):  # run at goal, then shoot, until one episode scores
            env.reset(seed=seed)
            for t in range(400):
                action = [shot if t >= 4 else right] * 3
                _, reward, terminated, truncated, info = env.step(np.array(action))
                if terminated or truncated:
                    break
            if info["is_success"]:
                assert reward == 1.0 and terminated and not truncated
                return
        pytest.fail("no goal in 40 scripted episodes")
    finally:
        env.close()


@needs_engine
def test_fppo_trains_end_to_end_with_worker_processes_and_leaves_none(tmp_path: Path) -> None:
    run = tmp_path / "football"
    proc = start_farl(
        "train",
        "--preset",
        "football-3v1-fppo",
        "--total-steps",
        "256",
        "--run-dir",
        str(run),
        "--set",
        "env.num_envs=2",
        "--set",
        "agent.rollout_steps=64",
        "--set",
        "agent.minibatch_size=32",
        "--set",
        "train.eval_every=256",
        "--set",
        "train.eval_episodes=2",
        "--set",
        "train.log_every=64",
        "--quiet",
    )
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) >= 4 and "eval_success" in rows[0]
    assert group_members(proc.pid) == []  # workers and engines are gone
    result = runner.invoke(
        app,
        [
            "eval",
            str(run / "checkpoints" / "last.pt"),
            "--episodes",
            "3",
            "--num-envs",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["episodes"] == 3 and info["success_rate"] is not None
    assert info["return_name"] == "goals" and info["env"] == "football-3v1"
    video = tmp_path / "football.mp4"  # the engine's 2D sketch, joined into one file
    result = runner.invoke(
        app,
        ["enjoy", str(run / "checkpoints" / "last.pt"), "--episodes", "1", "--video", str(video)],
    )
    assert result.exit_code == 0, result.output
    assert "episode 1: return" in result.output and video.stat().st_size > 1000


def test_install_script_builds_with_the_chosen_interpreter_first_on_path(tmp_path: Path) -> None:
    # PYTHON=venv/bin/python without activating the venv: the engine's build calls "python3"
    # from PATH, which must be that same interpreter. A stand-in interpreter records which
    # python3 it would get, then says the engine is there, so nothing is built.
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    seen = tmp_path / "seen"
    fake = venv_bin / "python"  # named python, not python3: the script must add a python3
    fake.write_text(f'#!/bin/sh\nreadlink -f "$(command -v python3)" > {seen}\nexit 0\n')
    fake.chmod(0o755)
    script = Path(__file__).resolve().parent.parent / "scripts" / "install-football.sh"
    result = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "PYTHON": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout
    assert seen.read_text().strip() == str(fake.resolve())
