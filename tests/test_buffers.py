"""GAE against a hand computation; the rollout buffer's bootstrap values."""

from __future__ import annotations

import torch

from farl_cli.buffers import RolloutBuffer, compute_gae

G, L = 0.9, 0.8


def col(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)[:, None]


def test_gae_without_episode_end_matches_hand_computation() -> None:
    r, v, nv = col(1, 2, 3), col(0.5, 0.4, 0.3), col(0.4, 0.3, 0.2)
    no = torch.zeros(3, 1, dtype=torch.bool)
    adv, ret = compute_gae(r, v, nv, no, no, G, L)
    d2 = 3 + G * 0.2 - 0.3
    d1 = 2 + G * 0.3 - 0.4
    d0 = 1 + G * 0.4 - 0.5
    a2 = d2
    a1 = d1 + G * L * a2
    a0 = d0 + G * L * a1
    torch.testing.assert_close(adv, col(a0, a1, a2))
    torch.testing.assert_close(ret, col(a0 + 0.5, a1 + 0.4, a2 + 0.3))


def test_termination_bootstraps_nothing_and_cuts_the_trace() -> None:
    r, v, nv = col(1, 2, 3), col(0.5, 0.4, 0.3), col(0.4, 9.0, 0.2)
    terminated = col(0, 1, 0).bool()
    adv, _ = compute_gae(r, v, nv, terminated, terminated, G, L)
    a2 = 3 + G * 0.2 - 0.3
    a1 = 2 - 0.4  # no bootstrap from the 9.0 behind the termination
    a0 = (1 + G * 0.4 - 0.5) + G * L * a1
    torch.testing.assert_close(adv, col(a0, a1, a2))


def test_truncation_bootstraps_from_the_final_value_and_cuts_the_trace() -> None:
    r, v, nv = col(1, 2, 3), col(0.5, 0.4, 0.3), col(0.4, 7.0, 0.2)
    terminated = torch.zeros(3, 1, dtype=torch.bool)
    ended = col(0, 1, 0).bool()
    adv, _ = compute_gae(r, v, nv, terminated, ended, G, L)
    a2 = 3 + G * 0.2 - 0.3
    a1 = 2 + G * 7.0 - 0.4  # bootstrapped from V(final observation), nothing from step 2
    a0 = (1 + G * 0.4 - 0.5) + G * L * a1
    torch.testing.assert_close(adv, col(a0, a1, a2))


def test_lambda_one_gives_discounted_returns() -> None:
    r, v = col(1, 1, 1), col(0, 0, 0)
    no = torch.zeros(3, 1, dtype=torch.bool)
    _, ret = compute_gae(r, v, col(0, 0, 5), no, no, 0.5, 1.0)
    torch.testing.assert_close(ret, col(1 + 0.5 + 0.25 + 0.125 * 5, 1 + 0.5 + 0.25 * 5, 1 + 2.5))


def test_buffer_next_values_use_the_next_step_the_final_value_or_the_last() -> None:
    buf = RolloutBuffer(steps=3, num_envs=2, obs_dim=1, k=1, max_n=2)
    z = torch.zeros(2)
    for t, (ended, term) in enumerate([((0, 1), (0, 0)), ((1, 0), (1, 0)), ((0, 0), (0, 0))]):
        buf.add_action(
            torch.zeros(2, 1),
            torch.zeros(2, 1, dtype=torch.long),
            z,
            torch.zeros(2, 1, 2),
            torch.tensor([10.0 * t, 10.0 * t + 1]),
        )
        buf.add_outcome(
            z,
            torch.tensor(term).bool(),
            torch.tensor(ended).bool(),
            torch.tensor([0.0, 99.0]) if t == 0 else z,
        )
    assert buf.full
    nv = buf.next_values(torch.tensor([-1.0, -2.0]))
    # env 0: next values 10, (terminated: 20, ignored by GAE), last -1
    # env 1: truncated at t=0 -> 99, then 21, last -2
    torch.testing.assert_close(nv, torch.tensor([[10.0, 99.0], [20.0, 21.0], [-1.0, -2.0]]))


def test_replay_buffer_wraps_around_and_overwrites_the_oldest() -> None:
    import numpy as np

    from farl_cli.buffers import ReplayBuffer

    buf = ReplayBuffer(capacity=5, obs_dim=2, sizes=(3, 4), seed=0)
    for t in range(4):  # two environments: 8 transitions into 5 slots
        buf.add(
            np.full((2, 2), t),
            np.full((2, 2), t),
            np.full(2, t),
            np.full((2, 2), t),
            np.zeros(2, bool),
        )
    assert (buf.size, buf.pos) == (5, 3)
    assert buf.rewards.tolist() == [2.0, 3.0, 3.0, 1.0, 2.0]
    assert buf.actions.dtype == torch.uint8 and buf.actions[1].tolist() == [3, 3]
    batch = buf.sample(16)
    assert set(batch["rewards"].tolist()) <= {1.0, 2.0, 3.0}  # the overwritten 0s are gone
