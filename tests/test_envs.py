"""The environment registry: farl's names are gymnasium ids, made with gymnasium.make."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from farl_cli.envs import ENV_IDS, PLATFORM_ID, UnknownEnvironmentError, gym_id, make_env
from farl_cli.envs.wrappers import base_snapshot, restore_base


def test_every_name_is_a_registered_gymnasium_id() -> None:
    for name, env_id in ENV_IDS.items():
        assert env_id in gym.registry, name
        assert gym_id(name) == (env_id, {})
    assert gym_id("gym:CartPole-v1") == ("CartPole-v1", {})


def test_environments_come_from_gymnasium_make() -> None:
    for name in ("platform", "hopper", "football-3v1"):  # football: no engine needed to build
        env = make_env(name)
        try:
            assert env.spec is not None and env.spec.id == gym_id(name)[0]
        finally:
            env.close()
    env = gym.make(PLATFORM_ID)  # any gymnasium user can make farl's own
    assert env.reset(seed=0)[0].shape == env.observation_space.shape
    env.close()


def test_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownEnvironmentError, match="Did you mean 'hopper'"):
        make_env("hoper")


def test_starting_farl_imports_neither_mujoco_nor_glfw() -> None:
    # gymnasium's MuJoCo package imports GLFW, whose import runs a probe in a child process
    # that shares farl's stderr: a farl killed during start-up got that child's traceback.
    code = (
        "import sys, farl_cli.cli, farl_cli.training, farl_cli.envs.wrappers; "
        "print(sorted(m for m in sys.modules if m.split('.')[-1] in ('mujoco', 'glfw')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_restored_humanoid_steps_exactly_as_the_original() -> None:
    # Humanoid's reward reads the body positions that the previous step left in its data;
    # recomputing them from the restored state changed the next reward (by about 1e-4), so
    # a resumed run drifted from the uninterrupted one. Older snapshots still restore.
    envs = [make_env("humanoid") for _ in range(3)]
    try:
        original, restored, older = envs
        for env, seed in zip(envs, (0, 1, 2), strict=True):
            env.reset(seed=seed)
        actions = [original.action_space.sample() for _ in range(8)]
        for action in actions[:3]:
            original.step(action)
        saved = base_snapshot(original.unwrapped)
        assert saved is not None
        qpos = original.unwrapped.data.qpos.copy()
        restore_base(restored.unwrapped, saved)
        restore_base(older.unwrapped, {"mujoco": saved["mujoco"]})
        for action in actions[3:]:
            want, got = original.step(action), restored.step(action)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1] == want[1]
        np.testing.assert_array_equal(older.unwrapped.data.qpos, qpos)
    finally:
        for env in envs:
            env.close()


def test_a_mujoco_environment_is_snapshotted_by_its_simulator_state() -> None:
    env = make_env("hopper")
    try:
        env.reset(seed=0)
        base = env.unwrapped
        saved = base_snapshot(base)
        assert saved is not None and set(saved) == {"mujoco", "derived"}
        qpos = base.data.qpos.copy()
        env.step(env.action_space.sample())
        assert not np.array_equal(base.data.qpos, qpos)
        restore_base(base, saved)
        np.testing.assert_array_equal(base.data.qpos, qpos)
    finally:
        env.close()
    platform = make_env("platform")  # declares its own snapshot instead
    try:
        assert set(base_snapshot(platform.unwrapped) or {}) == {"declared"}
    finally:
        platform.close()
