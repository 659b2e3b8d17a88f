"""Evaluation: exact episode counts and statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from farl_cli.evaluation import evaluate, summarize


class Countdown(gym.Env):
    """Episode i (per env, from reset) lasts 1 + seed % 3 steps; reward 1 per step."""

    observation_space = spaces.Box(0, 1, (1,))
    action_space = spaces.MultiDiscrete([2])

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        self.left = 1 + int(self.np_random.integers(3))
        return np.zeros(1, np.float32), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        self.left -= 1
        return np.zeros(1, np.float32), 1.0, self.left == 0, False, {"is_success": True}


def test_summary_statistics() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], [True, False, True, True])
    assert (s.mean, s.median, s.min, s.max, s.mean_length) == (2.5, 2.5, 1.0, 4.0, 1.5)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.ci95 == pytest.approx(1.96 * s.std / 2)
    assert s.success_rate == 0.75


@pytest.mark.parametrize(("episodes", "num_envs"), [(1, 4), (7, 3), (20, 8)])
def test_exactly_the_requested_number_of_episodes(episodes: int, num_envs: int) -> None:
    seen = []
    stats = evaluate(
        lambda o: np.zeros((len(o), 1), np.int64),
        Countdown,
        episodes,
        num_envs,
        seed=0,
        on_episode=seen.append,
    )
    assert stats.episodes == episodes and seen == list(range(1, episodes + 1))
    assert stats.mean == stats.mean_length  # reward 1 per step
    assert stats.success_rate == 1.0 and stats.return_name == "return"


class Goals(Countdown):
    metadata = {"return_name": "goals"}  # noqa: RUF012


def test_statistics_are_named_after_what_the_environment_says_its_return_counts() -> None:
    stats = evaluate(lambda o: np.zeros((len(o), 1), np.int64), Goals, 2, 1, seed=0)
    assert stats.return_name == "goals" and stats.to_dict()["return_name"] == "goals"


class RewardIsAction(Countdown):
    """Countdown whose reward is the action taken, so returns show what a policy sampled."""

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float(action[0]), terminated, truncated, info


def test_stochastic_sampling_follows_the_seed_and_leaves_the_callers_generator_alone() -> None:
    import torch

    def sample(obs: np.ndarray) -> np.ndarray:
        return torch.randint(0, 2, (len(obs), 1)).numpy()

    def run(seed: int) -> float:
        return evaluate(sample, RewardIsAction, 40, num_envs=4, seed=seed).mean

    torch.manual_seed(99)
    state = torch.get_rng_state()
    assert run(3) == run(3)
    assert run(3) != run(4)
    assert torch.equal(torch.get_rng_state(), state)
