"""Factored action spaces and the codecs that map sub-action indices to native actions.

A factored space is a product ``A_1 x ... x A_n`` of small discrete spaces (section 3 of the
paper) together with a factorization: ``independent`` (sub-actions sampled in parallel) or
``autoregressive`` (sub-action i conditioned on sub-actions 1..i-1). Agents only ever see a
:class:`FactoredSpace`; everything environment-specific lives in a :class:`Codec`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from farl_cli.errors import FarlError

Factorization = Literal["independent", "autoregressive"]
FACTORIZATIONS: tuple[str, ...] = ("independent", "autoregressive")

ACCEPTED = (
    "Box (each dimension discretized into bins), MultiDiscrete, Discrete (optionally "
    "mixed-radix), or Tuple(Discrete(k), Tuple(Box(1,) x k)) (a parameterized action)"
)


class FactoringError(FarlError):
    """An action space, or a request about one, that cannot be factored."""


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class FactoredSpace:
    """Sub-action sizes ``(n_1, ..., n_k)``, their labels and the factorization."""

    sizes: tuple[int, ...]
    factorization: Factorization
    dim_labels: tuple[str, ...]
    value_labels: tuple[tuple[str, ...], ...]
    meaning_depends_on_previous: bool = False
    # every dimension's values are evenly spaced points on a line, in order (a binned Box),
    # so that a network may treat neighbouring values as neighbours
    evenly_spaced: bool = False

    def __post_init__(self) -> None:
        if not self.sizes:
            raise FactoringError("a factored space needs at least one dimension")
        if any(int(n) < 1 for n in self.sizes):
            raise FactoringError(f"every sub-action size must be >= 1, got {self.sizes}")
        if self.factorization not in FACTORIZATIONS:
            raise FactoringError(
                f"factorization must be one of {', '.join(FACTORIZATIONS)}, "
                f"got {self.factorization!r}"
            )
        if len(self.dim_labels) != len(self.sizes):
            raise FactoringError("one label per dimension is required")
        if len(self.value_labels) != len(self.sizes) or any(
            len(v) != n for v, n in zip(self.value_labels, self.sizes, strict=True)
        ):
            raise FactoringError("one label per value of every dimension is required")

    @property
    def n_dims(self) -> int:
        """Number of sub-action dimensions k."""
        return len(self.sizes)

    @functools.cached_property
    def sizes_array(self) -> np.ndarray:
        """The sizes as an array, built once (codecs check every step's actions against it)."""
        return np.asarray(self.sizes, dtype=np.int64)

    @property
    def max_size(self) -> int:
        """Largest sub-action size, the width of a padded logits tensor."""
        return max(self.sizes)

    @property
    def n_joint_actions(self) -> int:
        """Exact number of joint actions, the product of the sizes."""
        return math.prod(self.sizes)

    @property
    def uniform_entropy(self) -> float:
        """Entropy of the uniform policy, ``sum_i log n_i`` (table 1 of the paper)."""
        return float(sum(math.log(n) for n in self.sizes))

    @property
    def factored_outputs(self) -> int:
        """Logits a factored policy head needs: ``sum_i n_i``."""
        return sum(self.sizes)

    def mask(self) -> np.ndarray:
        """Boolean ``[k, max_n]`` array, True where value j exists in dimension i."""
        m = np.zeros((self.n_dims, self.max_size), dtype=bool)
        for i, n in enumerate(self.sizes):
            m[i, :n] = True
        return m

    def with_factorization(self, factorization: Factorization) -> FactoredSpace:
        """The same space under another factorization."""
        return FactoredSpace(
            self.sizes,
            factorization,
            self.dim_labels,
            self.value_labels,
            self.meaning_depends_on_previous,
            self.evenly_spaced,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, strings, ints) for checkpoints and JSON."""
        return {
            "sizes": list(self.sizes),
            "factorization": self.factorization,
            "dim_labels": list(self.dim_labels),
            "value_labels": [list(v) for v in self.value_labels],
            "meaning_depends_on_previous": self.meaning_depends_on_previous,
            "evenly_spaced": self.evenly_spaced,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FactoredSpace:
        """Inverse of :meth:`to_dict`."""
        return cls(
            sizes=tuple(int(n) for n in data["sizes"]),
            factorization=data["factorization"],
            dim_labels=tuple(data["dim_labels"]),
            value_labels=tuple(tuple(v) for v in data["value_labels"]),
            meaning_depends_on_previous=bool(data.get("meaning_depends_on_previous", False)),
            evenly_spaced=bool(data.get("evenly_spaced", False)),
        )


class Codec(Protocol):
    """Turns a vector of sub-action indices into an environment's native action."""

    space: FactoredSpace
    native_space: gym.Space

    def decode(self, sub_actions: np.ndarray) -> Any:
        """Native action for one vector of k sub-action indices."""
        ...


def _check_indices(sub_actions: np.ndarray, space: FactoredSpace) -> np.ndarray:
    a = np.asarray(sub_actions, dtype=np.int64).reshape(-1)
    if a.shape[0] != space.n_dims:
        raise FactoringError(f"expected {space.n_dims} sub-actions, got {a.shape[0]}")
    if np.any(a < 0) or np.any(a >= space.sizes_array):
        raise FactoringError(f"sub-actions {a.tolist()} out of range for sizes {list(space.sizes)}")
    return a


@dataclass
class BoxCodec:
    """``Box`` with d dimensions -> d sub-actions of m bins, endpoints included."""

    native_space: spaces.Box
    bins: int = 11
    factorization: Factorization = "independent"
    names: tuple[str, ...] | None = None
    space: FactoredSpace = field(init=False)
    values: np.ndarray = field(init=False)
    _rows: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        _check_bins(self.bins)
        box = self.native_space
        if len(box.shape) != 1:
            raise FactoringError(f"only 1-D Box action spaces can be binned, got shape {box.shape}")
        low, high = box.low.astype(np.float64), box.high.astype(np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise FactoringError(
                f"a Box needs finite bounds to be binned, got low={low} high={high}"
            )
        d = box.shape[0]
        j = np.arange(self.bins, dtype=np.float64)
        # bin j of dimension i means low_i + j * (high_i - low_i) / (m - 1)
        self.values = low[:, None] + j[None, :] * (high - low)[:, None] / (self.bins - 1)
        self._rows = np.arange(d)
        names = self.names or tuple(f"a{i}" for i in range(d))
        if len(names) != d:
            raise FactoringError(f"{len(names)} dimension names for a Box of {d} dimensions")
        self.space = FactoredSpace(
            sizes=(self.bins,) * d,
            factorization=self.factorization,
            dim_labels=tuple(names),
            value_labels=tuple(tuple(_fmt(v) for v in row) for row in self.values),
            evenly_spaced=True,
        )

    def decode(self, sub_actions: np.ndarray) -> np.ndarray:
        """Torque (or other) values of the chosen bins."""
        a = _check_indices(sub_actions, self.space)
        return self.values[self._rows, a].astype(self.native_space.dtype)


@dataclass
class MultiDiscreteCodec:
    """``MultiDiscrete`` -> the same dimensions, offset by the space's ``start``."""

    native_space: spaces.MultiDiscrete
    factorization: Factorization = "independent"
    names: tuple[str, ...] | None = None
    value_names: tuple[tuple[str, ...], ...] | None = None
    space: FactoredSpace = field(init=False)

    def __post_init__(self) -> None:
        md = self.native_space
        if md.nvec.ndim != 1:
            raise FactoringError(f"only 1-D MultiDiscrete spaces are accepted, got {md.nvec.shape}")
        sizes = tuple(int(n) for n in md.nvec)
        start = md.start.reshape(-1)
        names = self.names or tuple(f"d{i}" for i in range(len(sizes)))
        values = self.value_names or tuple(
            tuple(str(int(start[i]) + j) for j in range(n)) for i, n in enumerate(sizes)
        )
        self.space = FactoredSpace(sizes, self.factorization, tuple(names), tuple(values))

    def decode(self, sub_actions: np.ndarray) -> np.ndarray:
        """The indices, shifted by ``start``."""
        a = _check_indices(sub_actions, self.space)
        return (a + self.native_space.start.reshape(-1)).astype(self.native_space.dtype)


@dataclass
class DiscreteCodec:
    """``Discrete(n)`` -> one dimension, or a mixed-radix factoring whose product is n."""

    native_space: spaces.Discrete
    radix: tuple[int, ...] | None = None
    factorization: Factorization = "independent"
    space: FactoredSpace = field(init=False)
    _weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = int(self.native_space.n)
        radix = tuple(int(r) for r in self.radix) if self.radix else (n,)
        if any(r < 2 for r in radix) and radix != (n,):
            raise FactoringError(f"every radix must be >= 2, got {list(radix)}")
        if math.prod(radix) != n:
            raise FactoringError(
                f"mixed radix {list(radix)} has {math.prod(radix)} combinations but "
                f"Discrete has {n}: the product of the radices must equal n"
            )
        # most significant digit first: index = sum_i a_i * prod(radix[i+1:])
        self._weights = np.array(
            [math.prod(radix[i + 1 :]) for i in range(len(radix))], dtype=np.int64
        )
        labels = ("action",) if len(radix) == 1 else tuple(f"digit{i}" for i in range(len(radix)))
        self.space = FactoredSpace(
            radix,
            self.factorization,
            labels,
            tuple(tuple(str(j) for j in range(r)) for r in radix),
        )

    def decode(self, sub_actions: np.ndarray) -> int:
        """The index of the joint action, offset by the space's ``start``."""
        a = _check_indices(sub_actions, self.space)
        return int(a @ self._weights) + int(self.native_space.start)


@dataclass
class HybridCodec:
    """``Tuple(Discrete(k), Tuple(Box(1,), ...))`` -> ``[k, m]``.

    The second sub-action is a bin of the parameter *of the choice made in the first*, so
    its meaning depends on the first sub-action: the natural factorization is
    autoregressive.
    """

    native_space: spaces.Tuple
    bins: int = 11
    factorization: Factorization = "autoregressive"
    choice_names: tuple[str, ...] | None = None
    space: FactoredSpace = field(init=False)
    values: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        _check_bins(self.bins)
        if not is_hybrid(self.native_space):
            raise FactoringError(
                f"expected Tuple(Discrete(k), Tuple(Box(1,) x k)), got {self.native_space}"
            )
        choice, params = self.native_space.spaces
        k = int(choice.n)
        lows = np.array([float(p.low.reshape(-1)[0]) for p in params.spaces])
        highs = np.array([float(p.high.reshape(-1)[0]) for p in params.spaces])
        if not (np.all(np.isfinite(lows)) and np.all(np.isfinite(highs))):
            raise FactoringError("every parameter Box needs finite bounds to be binned")
        j = np.arange(self.bins, dtype=np.float64)
        self.values = lows[:, None] + j[None, :] * (highs - lows)[:, None] / (self.bins - 1)
        names = self.choice_names or tuple(str(c) for c in range(k))
        if len(names) != k:
            raise FactoringError(f"{len(names)} choice names for Discrete({k})")
        param_labels = tuple(
            " | ".join(f"{names[c]} {_fmt(self.values[c, b])}" for c in range(k))
            for b in range(self.bins)
        )
        self.space = FactoredSpace(
            sizes=(k, self.bins),
            factorization=self.factorization,
            dim_labels=("choice", "parameter of the choice"),
            value_labels=(tuple(names), param_labels),
            meaning_depends_on_previous=True,
        )

    def decode(self, sub_actions: np.ndarray) -> tuple[int, tuple[np.ndarray, ...]]:
        """``(choice, params)`` with the chosen parameter set to its bin, the others to low."""
        a = _check_indices(sub_actions, self.space)
        choice, b = int(a[0]), int(a[1])
        params = []
        for c, box in enumerate(self.native_space.spaces[1].spaces):
            v = self.values[c, b] if c == choice else box.low.reshape(-1)[0]
            params.append(np.array([v], dtype=box.dtype))
        return choice, tuple(params)


def is_hybrid(space: gym.Space) -> bool:
    """True for ``Tuple(Discrete(k), Tuple(Box(1,) x k))``."""
    if not isinstance(space, spaces.Tuple) or len(space.spaces) != 2:
        return False
    choice, params = space.spaces
    return (
        isinstance(choice, spaces.Discrete)
        and isinstance(params, spaces.Tuple)
        and len(params.spaces) == int(choice.n)
        and all(isinstance(p, spaces.Box) and int(np.prod(p.shape)) == 1 for p in params.spaces)
    )


def _check_bins(bins: int) -> None:
    if not isinstance(bins, int | np.integer) or bins < 2:
        raise FactoringError(f"bins must be an integer >= 2 (both endpoints included), got {bins}")


def make_codec(
    space: gym.Space,
    *,
    bins: int = 11,
    factorization: Factorization | None = None,
    radix: tuple[int, ...] | None = None,
    names: tuple[str, ...] | None = None,
) -> BoxCodec | MultiDiscreteCodec | DiscreteCodec | HybridCodec:
    """Build the codec for a native action space, or refuse with what is accepted."""
    if factorization is not None and factorization not in FACTORIZATIONS:
        raise FactoringError(
            f"factorization must be one of {', '.join(FACTORIZATIONS)}, got {factorization!r}"
        )
    if radix is not None and not isinstance(space, spaces.Discrete):
        raise FactoringError(f"a mixed radix applies to Discrete spaces only, got {space}")
    if isinstance(space, spaces.Box):
        return BoxCodec(space, bins, factorization or "independent", names)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiDiscreteCodec(space, factorization or "independent", names)
    if isinstance(space, spaces.Discrete):
        return DiscreteCodec(space, radix, factorization or "independent")
    if is_hybrid(space):
        return HybridCodec(space, bins, factorization or "autoregressive", names)
    raise FactoringError(f"cannot factor the action space {space}; accepted: {ACCEPTED}")


def describe(space: FactoredSpace, entropy_target_beta: float | None = None) -> dict[str, Any]:
    """Everything ``farl inspect-actions`` shows, as plain data.

    Joint-action counts are exact integers; entropies are in nats. With a beta (FSAC), the
    entropy targets ``beta * log n_i`` per dimension and ``beta * sum_i log n_i`` overall
    (equations 12 and 13) are included.
    """
    n_joint = space.n_joint_actions
    dims = []
    for i, (label, n, values) in enumerate(
        zip(space.dim_labels, space.sizes, space.value_labels, strict=True)
    ):
        dim: dict[str, Any] = {
            "index": i,
            "label": label,
            "size": n,
            "values": list(values),
            "uniform_entropy": math.log(n),
        }
        if entropy_target_beta is not None:
            dim["entropy_target"] = entropy_target_beta * math.log(n)
        dims.append(dim)
    out: dict[str, Any] = {
        "factorization": space.factorization,
        "dimensions": dims,
        "joint_actions": n_joint,
        "joint_actions_scientific": f"{n_joint:.3g}" if n_joint < 1000 else f"{n_joint:.2e}",
        "uniform_entropy": space.uniform_entropy,
        "factored_head_outputs": space.factored_outputs,
        "flat_head_outputs": n_joint,
        "sampling": "parallel" if space.factorization == "independent" else "sequential",
        "meaning_depends_on_previous": space.meaning_depends_on_previous,
    }
    if entropy_target_beta is not None:
        out["entropy_target_beta"] = entropy_target_beta
        out["entropy_target"] = entropy_target_beta * space.uniform_entropy
    return out
