"""The Platform game against the numbers of its specification (see farl_cli/envs/platform.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from farl_cli.envs import PLATFORM_ID, make_env
from farl_cli.envs.platform import GOAL_X, PLATFORMS, PlatformEnv
from farl_cli.envs.wrappers import factorize

FIRST_OBS = [0.018957, 0, 0.222222, 0, 0.909091, 1, 0.957447, 0, 0]

# Found by a greedy one-step look-ahead over the 63 factored actions (21 bins); with seed 3
# it reaches the goal. Pinned here: any change to the dynamics or to the order of the
# random draws changes this episode.
GOAL_SEED = 3
GOAL_SEQUENCE = [(1, 8), (1, 7), (0, 2), (1, 16), (1, 8), (1, 8), (0, 2), (1, 16), (0, 2)]


def native(choice: int, param: float) -> tuple[int, tuple[np.ndarray, ...]]:
    params = [np.zeros(1, np.float32) for _ in range(3)]
    params[choice][0] = param
    return choice, tuple(params)


def play(env: gym.Env, seed: int, actions: list) -> tuple[float, list, dict]:
    env.reset(seed=seed)
    total, rewards, info = 0.0, [], {}
    for a in actions:
        _, r, terminated, truncated, info = env.step(a)
        total += r
        rewards.append(r)
        if terminated or truncated:
            break
    return total, rewards, info


def test_spaces_are_as_specified() -> None:
    env = PlatformEnv()
    choice, params = env.action_space.spaces
    assert choice.n == 3
    assert [(float(p.low[0]), float(p.high[0]), p.shape) for p in params.spaces] == [
        (0.0, 30.0, (1,)),
        (0.0, 720.0, (1,)),
        (0.0, 430.0, (1,)),
    ]
    assert env.observation_space.shape == (9,)


def test_first_observation() -> None:
    obs, info = PlatformEnv().reset(seed=123)
    np.testing.assert_allclose(obs, FIRST_OBS, atol=1e-6)
    assert info == {}


def test_gymnasium_registration() -> None:
    env = gym.make(PLATFORM_ID)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, FIRST_OBS, atol=1e-6)


def test_a_run_lasts_exactly_20_frames() -> None:
    env = PlatformEnv()
    env.reset(seed=0)
    _, r, terminated, _, info = env.step(native(0, 10.0))
    assert not terminated and info["frames"] == 20
    assert r == pytest.approx(env.x / GOAL_X)
    assert 0 < env.x < 250


def test_hop_lasts_until_the_player_stands_again() -> None:
    env = PlatformEnv()
    env.reset(seed=0)
    env.x = 1000.0  # on platform 3, out of every enemy's reach
    _, _, terminated, _, info = env.step(native(1, 0.0))  # straight up and down
    assert not terminated
    assert info["frames"] > 100  # about 2 * 34 / (9.8 * 0.05) frames in the air
    assert env.y == 40.0 and env.vy == 0.0 and env.x == 1000.0


def test_parameters_are_clipped_to_their_range() -> None:
    a, b = PlatformEnv(), PlatformEnv()
    a.reset(seed=5)
    b.reset(seed=5)
    oa = a.step(native(0, 1000.0))
    ob = b.step(native(0, 30.0))
    np.testing.assert_array_equal(oa[0], ob[0])


def test_greedy_episode_reaches_the_goal_with_return_exactly_one() -> None:
    env = factorize(make_env("platform"), bins=21)
    total, rewards, info = play(env, GOAL_SEED, [np.array(a) for a in GOAL_SEQUENCE])
    assert info["termination"] == "goal" and info["is_success"]
    assert env.unwrapped.x == GOAL_X
    assert total == pytest.approx(1.0, abs=1e-12)
    assert sum(rewards) == pytest.approx(1.0, abs=1e-12)


def random_episodes(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    env = factorize(make_env("platform"), bins=21)
    rng = np.random.default_rng(seed)
    for episode in range(n):
        env.reset(seed=episode)
        total = 0.0
        while True:
            _, r, terminated, truncated, info = env.step(rng.integers([0, 0], [3, 21]))
            total += r
            if terminated or truncated:
                break
        yield env.unwrapped, total, info


def test_return_telescopes_to_final_x() -> None:
    for base, total, _ in random_episodes(60):
        assert total == pytest.approx(base.x / GOAL_X, abs=1e-9)


def test_each_termination_cause_holds_what_it_says() -> None:
    seen = set()
    for base, _, info in random_episodes(80):
        cause = info["termination"]
        seen.add(cause)
        if cause == "fell":
            assert base.y < 40
        elif cause == "enemy":
            assert any(abs(base.x - e.x) < 20 and 10 < base.y < 70 for e in base.enemies)
        assert info["is_success"] == (cause == "goal")
    assert {"fell", "enemy"} <= seen
    _, _, info = play(
        factorize(make_env("platform"), bins=21), GOAL_SEED, [np.array(a) for a in GOAL_SEQUENCE]
    )
    assert info["termination"] == "goal"


def test_random_play_scores_far_below_the_goal() -> None:
    returns = [total for _, total, _ in random_episodes(200, seed=1)]
    assert np.mean(returns) < 0.2


def test_truncation_after_max_actions_is_not_termination() -> None:
    assert PlatformEnv().max_actions == 200
    env = PlatformEnv(max_actions=2)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(native(0, 0.0))
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step(native(0, 0.0))
    assert not terminated and truncated


def test_a_seed_reproduces_an_episode_and_another_seed_differs() -> None:
    def trajectory(seed: int) -> list:
        env = PlatformEnv()
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in [native(0, 20.0), native(1, 300.0), native(0, 5.0), native(2, 400.0)]:
            obs, r, terminated, _, _ = env.step(a)
            out.append(np.append(obs, r))
            if terminated:
                break
        return out

    a, b, c = trajectory(7), trajectory(7), trajectory(8)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=False))


def test_observation_switches_platform_features_and_enemy() -> None:
    env = PlatformEnv()
    env.reset(seed=0)
    env.x = 500.0
    obs = env._observation()
    assert obs[4] == pytest.approx(275 / 275) and obs[5] == pytest.approx(50 / 275)
    assert obs[6] == pytest.approx(235 / 235) and obs[7] == pytest.approx(475 / 1035)
    assert obs[2] == pytest.approx(env.enemies[1].x / 1035)
    env.x = 990.0
    obs = env._observation()
    assert obs[4] == pytest.approx(50 / 275) and obs[5] == 0 and obs[6] == 0


def test_landing_snaps_to_the_top_and_stops_horizontal_motion() -> None:
    env = PlatformEnv()
    env.reset(seed=0)
    env.x, env.y, env.vx, env.vy = 100.0, 41.0, 50.0, -40.0  # falling onto platform 1
    env._frame(0, 0.0)
    assert env.y == 40.0 and env.vy == 0.0 and env.vx == 0.0


def test_enemies_stay_on_their_platforms() -> None:
    env = PlatformEnv()
    env.reset(seed=0)
    for _ in range(2000):
        env.enemies[0].move(env.np_random)
        px, width = PLATFORMS[0]
        assert px <= env.enemies[0].x <= px + width - 20
        assert abs(env.enemies[0].speed) <= 30


@pytest.mark.parametrize("mode", ["rgb_array", "rgb_array_list"])
def test_rendering_without_a_display_shows_every_frame_of_the_last_action(mode: str) -> None:
    env = PlatformEnv(render_mode=mode)
    env.reset(seed=0)
    _, _, _, _, info = env.step(native(1, 200.0))
    frames = env.frames_of_last_action()
    assert frames.shape == (info["frames"], 300, 1035, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])  # the player moved
    rendered = env.render()
    if mode == "rgb_array":
        assert rendered.shape == (300, 1035, 3)
    else:
        assert len(rendered) == info["frames"] + 1  # the reset frame, then every physics frame


def test_a_snapshot_mid_episode_is_plain_data_and_restores_the_same_future(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from farl_cli.checkpoint import load_checkpoint, save_checkpoint

    hop = (1, (np.array([0.0]), np.array([400.0]), np.array([0.0])))
    a, b = PlatformEnv(), PlatformEnv()
    a.reset(seed=3)
    b.reset(seed=9)
    a.step(hop)
    a.vx = np.float64(a.vx)  # as mid-flight, where the take-off noise is a numpy scalar
    a.enemies[0].x = np.float64(a.enemies[0].x)
    state = a.snapshot()
    # what weights_only loading accepts: nothing but Python numbers and containers
    path = save_checkpoint(tmp_path / "s.pt", {"state": state, "t": torch.zeros(1)})
    assert load_checkpoint(path)["state"] == state
    b.restore(state)
    b.np_random.bit_generator.state = a.np_random.bit_generator.state
    for _ in range(3):
        run = (0, (np.array([20.0]), np.array([0.0]), np.array([0.0])))
        out_a, out_b = a.step(run), b.step(run)
        assert np.array_equal(out_a[0], out_b[0]) and out_a[1:4] == out_b[1:4]
