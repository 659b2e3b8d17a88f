"""The environment registry: farl's names are gymnasium ids, made with gymnasium.make."""

from __future__ import annotations

import gymnasium as gym
import pytest

from farl_cli.envs import ENV_IDS, PLATFORM_ID, UnknownEnvironmentError, gym_id, make_env


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
