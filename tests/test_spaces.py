"""Factored spaces and codecs: sizes, labels, decoding, refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from gymnasium import spaces

from farl_cli.envs import make_env
from farl_cli.envs.wrappers import FactoredActions, factorize
from farl_cli.spaces import (
    BoxCodec,
    DiscreteCodec,
    FactoredSpace,
    FactoringError,
    HybridCodec,
    make_codec,
)

PLATFORM_NATIVE = spaces.Tuple(
    (
        spaces.Discrete(3),
        spaces.Tuple((spaces.Box(0, 30, (1,)), spaces.Box(0, 720, (1,)), spaces.Box(0, 430, (1,)))),
    )
)


def test_box_bins_include_both_endpoints() -> None:
    box = spaces.Box(np.array([-1.0, -0.4]), np.array([1.0, 0.4]), dtype=np.float32)
    codec = make_codec(box, bins=11)
    assert isinstance(codec, BoxCodec)
    assert codec.space.sizes == (11, 11)
    assert codec.space.factorization == "independent"
    for i, (low, high) in enumerate([(-1.0, 1.0), (-0.4, 0.4)]):
        for j in range(11):
            a = np.zeros(2, dtype=np.int64)
            a[i] = j
            assert codec.decode(a)[i] == pytest.approx(low + j * (high - low) / 10, abs=1e-6)
    np.testing.assert_allclose(codec.decode(np.array([10, 10])), [1.0, 0.4], rtol=1e-6)
    assert codec.decode(np.array([0, 5])).dtype == np.float32
    assert codec.space.value_labels[1][0] == "-0.4"
    # binned values are evenly spaced, in order; a Box's codec says so and keeps saying so
    assert codec.space.evenly_spaced
    assert FactoredSpace.from_dict(codec.space.to_dict()).evenly_spaced
    assert codec.space.with_factorization("autoregressive").evenly_spaced


def test_multidiscrete_is_kept_as_it_is_with_its_start() -> None:
    md = spaces.MultiDiscrete([19, 19, 19], start=[1, 1, 1])
    codec = make_codec(md)
    assert codec.space.sizes == (19, 19, 19)
    np.testing.assert_array_equal(codec.decode(np.array([0, 5, 18])), [1, 6, 19])
    assert not codec.space.evenly_spaced  # indices of choices need not be in any order


def test_discrete_is_one_dimension_by_default() -> None:
    codec = make_codec(spaces.Discrete(5, start=2))
    assert codec.space.sizes == (5,)
    assert codec.decode(np.array([4])) == 6


def test_discrete_mixed_radix_is_a_bijection() -> None:
    codec = make_codec(spaces.Discrete(6859), radix=(19, 19, 19), factorization="autoregressive")
    assert isinstance(codec, DiscreteCodec)
    assert codec.space.sizes == (19, 19, 19)
    assert codec.space.factorization == "autoregressive"
    assert codec.decode(np.array([1, 2, 3])) == 1 * 361 + 2 * 19 + 3
    small = make_codec(spaces.Discrete(24), radix=(2, 3, 4))
    decoded = {small.decode(np.array(a)) for a in itertools.product(range(2), range(3), range(4))}
    assert decoded == set(range(24))


def test_hybrid_parameter_bin_belongs_to_the_chosen_action() -> None:
    codec = make_codec(PLATFORM_NATIVE, bins=21, names=("run", "hop", "leap"))
    assert isinstance(codec, HybridCodec)
    space = codec.space
    assert space.sizes == (3, 21)
    assert space.factorization == "autoregressive"
    assert space.meaning_depends_on_previous
    assert space.value_labels[0] == ("run", "hop", "leap")
    assert space.value_labels[1][20] == "run 30 | hop 720 | leap 430"
    choice, params = codec.decode(np.array([1, 10]))
    assert choice == 1
    assert float(params[1][0]) == pytest.approx(360.0)
    assert float(params[0][0]) == 0.0 and float(params[2][0]) == 0.0
    choice, params = codec.decode(np.array([2, 20]))
    assert (choice, float(params[2][0])) == (2, pytest.approx(430.0))
    assert PLATFORM_NATIVE.contains(codec.decode(np.array([0, 7])))


@pytest.mark.parametrize(
    ("space", "kwargs", "message"),
    [
        (spaces.Box(-1, 1, (2,)), {"bins": 1}, "bins must be an integer >= 2"),
        (PLATFORM_NATIVE, {"bins": 0}, "bins must be an integer >= 2"),
        (spaces.Box(-1, 1, (2, 2)), {}, "only 1-D Box"),
        (spaces.Box(-np.inf, np.inf, (2,)), {}, "finite bounds"),
        (spaces.Discrete(100), {"radix": (19, 19)}, "product of the radices must equal n"),
        (spaces.Box(-1, 1, (2,)), {"radix": (2, 2)}, "Discrete spaces only"),
        (spaces.Dict({"a": spaces.Discrete(2)}), {}, "cannot factor the action space Dict"),
        (spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))), {}, "accepted: Box"),
        (spaces.Box(-1, 1, (2,)), {"factorization": "joint"}, "factorization must be one of"),
    ],
)
def test_what_cannot_be_factored_is_refused_with_what_is_accepted(
    space: spaces.Space, kwargs: dict, message: str
) -> None:
    with pytest.raises(FactoringError, match=message):
        make_codec(space, **kwargs)


def test_factored_space_counts_and_mask() -> None:
    fs = FactoredSpace(
        (2, 3, 4), "independent", ("a", "b", "c"), (("0", "1"), ("x",) * 3, ("y",) * 4)
    )
    assert fs.n_joint_actions == 24
    assert fs.uniform_entropy == pytest.approx(math.log(24))
    assert fs.factored_outputs == 9
    assert fs.mask().tolist() == [
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]
    assert FactoredSpace.from_dict(fs.to_dict()) == fs
    assert fs.with_factorization("autoregressive").factorization == "autoregressive"


def test_factored_space_validates_its_labels() -> None:
    with pytest.raises(FactoringError, match="one label per value"):
        FactoredSpace((2,), "independent", ("a",), (("0",),))


def test_humanoid_has_11_to_the_17_joint_actions_labelled_by_actuator() -> None:
    env = factorize(make_env("humanoid"), bins=11)
    fs = env.factored_space
    assert fs.n_joint_actions == 11**17 == 505447028499293771
    assert fs.dim_labels[0] == "abdomen_y"
    assert fs.value_labels[0][0] == "-0.4" and fs.value_labels[0][-1] == "0.4"
    env.close()


def test_wrapper_exposes_multidiscrete_and_decodes_on_step() -> None:
    env = factorize(make_env("hopper"), bins=5)
    assert isinstance(env, FactoredActions)
    assert isinstance(env.action_space, spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == [5, 5, 5]
    np.testing.assert_allclose(env.action(np.array([0, 2, 4])), [-1.0, 0.0, 1.0])
    env.reset(seed=0)
    obs, reward, _terminated, _truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (11,) and np.isfinite(reward)
    env.close()


def test_out_of_range_sub_actions_are_refused() -> None:
    codec = make_codec(spaces.Box(-1, 1, (2,)), bins=3)
    with pytest.raises(FactoringError, match="out of range"):
        codec.decode(np.array([0, 3]))
    with pytest.raises(FactoringError, match="expected 2 sub-actions"):
        codec.decode(np.array([0]))
