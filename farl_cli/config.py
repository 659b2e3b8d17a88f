"""Preset schema (typed, validated), YAML loading and ``--set`` overrides.

A preset is one YAML file with three sections: ``env``, ``agent`` (FPPO or FSAC, told apart
by ``agent.algo``) and ``train``. Every mistake becomes a :class:`PresetError` that names the
file and the key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from farl_cli.errors import FarlError


def _not_bool(value: Any) -> Any:
    # YAML's true is Python's 1: without this, ``epochs: true`` would mean one epoch
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


NB = BeforeValidator(_not_bool)
# Every size is bounded, in preset files and in checkpoints alike: a file is data, and no
# value in it may make farl allocate without limit.
MAX_BINS = 1024
MAX_WIDTH = 4096
MAX_STEPS = 10**12
PositiveInt = Annotated[int, NB, Field(gt=0)]
Count = Annotated[int, NB, Field(gt=0, le=MAX_STEPS)]
Width = Annotated[int, NB, Field(gt=0, le=MAX_WIDTH)]
HiddenSizes = Annotated[list[Width], Field(max_length=8)]
PositiveFloat = Annotated[float, NB, Field(gt=0)]
UnitInterval = Annotated[float, NB, Field(ge=0, le=1)]
# Not in the paper, independent factorizations of evenly spaced values only (binned
# torques): each policy head's logits a polynomial of this degree in its bin's position
# instead of one free logit per bin (None). Degree 2 makes every head a discretized Gaussian
# over its bins (or a bowl that favours both ends), so that neighbouring torques share
# probability and the head explores around its mean, as a Gaussian policy does.
PolicyDegree = Annotated[int, NB, Field(ge=0, le=255)] | None


class PresetError(FarlError):
    """A preset file or override that does not fit the schema."""


class _Section(BaseModel):
    # no inf or NaN anywhere; ``bins: 21.5`` is refused by pydantic, ``epochs: true`` by NB
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class EnvConfig(_Section):
    """Which environment and how its action space is factored."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    bins: Annotated[int, NB, Field(ge=2, le=MAX_BINS)] = 11
    factorization: Literal["independent", "autoregressive"] | None = None
    radix: (
        Annotated[list[Annotated[int, NB, Field(ge=2, le=MAX_BINS)]], Field(max_length=64)] | None
    ) = None
    num_envs: Annotated[int, NB, Field(gt=0, le=256)] = 1
    vector: Literal["sync", "async", "ray"] = "sync"
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_module_import(self) -> EnvConfig:
        # gymnasium reads "module:Env-v0" as "import module first": a preset (or a
        # checkpoint, which carries one) must not make farl import code
        if self.name.startswith("gym:") and ":" in self.name[len("gym:") :]:
            raise ValueError(
                f"env.name {self.name!r}: module-qualified ids import code; give a registered "
                "gymnasium id (gym:<ID>)"
            )
        return self


class FPPOConfig(_Section):
    """Factored PPO (section 5.2)."""

    algo: Literal["fppo"] = "fppo"
    learning_rate: PositiveFloat = 3e-4
    gamma: Annotated[float, NB, Field(gt=0, le=1)] = 0.99
    gae_lambda: UnitInterval = 0.95
    clip_epsilon: PositiveFloat = 0.2
    kl_coef: Annotated[float, NB, Field(ge=0)] = 0.2
    entropy_coef: Annotated[float, NB, Field(ge=0)] = 0.0
    value_coef: Annotated[float, NB, Field(ge=0)] = 0.5
    hidden_sizes: HiddenSizes = Field(default_factory=lambda: [64, 64])
    activation: Literal["relu", "tanh"] = "relu"
    rollout_steps: Annotated[int, NB, Field(gt=0, le=1_000_000)] = 2048
    minibatch_size: Annotated[int, NB, Field(gt=0, le=1_000_000)] = 64
    epochs: Annotated[int, NB, Field(gt=0, le=1000)] = 10
    max_grad_norm: PositiveFloat = 0.5
    normalize_advantages: bool = True
    normalize_observations: bool = False
    # The policy heads of FSAC's policy_degree and policy_ordinal (below), not in the paper,
    # off by default, not measured with FPPO.
    policy_degree: PolicyDegree = None
    policy_ordinal: bool = False


class FSACConfig(_Section):
    """Factored SAC (section 5.3 and appendix A)."""

    algo: Literal["fsac"] = "fsac"
    learning_rate: PositiveFloat = 3e-4
    gamma: Annotated[float, NB, Field(gt=0, le=1)] = 0.99
    tau: Annotated[float, NB, Field(gt=0, le=1)] = 0.005
    entropy_target_beta: UnitInterval = 0.5
    initial_alpha: PositiveFloat = 0.1
    # Autoregressive only: the top MDP's temperature, learned by eq. 12 (the paper), tied
    # to the mean of the per-head temperatures, or "heads": the up-Q target weighs each
    # head's log-probability by that head's temperature, with no top temperature at all.
    top_alpha: Literal["learned", "tied", "heads"] = "learned"
    # Soft critic targets (the paper) or targets without entropy terms ("decoupled"): the
    # temperatures then act on the policy's loss alone and cannot widen the Q-value gaps.
    entropy_in_targets: bool = True
    # Independent only: each sub-Q regressed on its own target r + gamma V^i(s') (the paper,
    # eq. 5 per dimension), or "additive": the joint Q is the sum of the sub-Qs, regressed on
    # one target r + gamma sum_i V^i(s'), so each sub-Q learns its share of the joint value
    # instead of averaging over whatever the other dimensions did in the replayed actions.
    # Not in the paper, "pairwise": the additive joint Q plus a term for every pair of
    # dimensions, sum_{i<j} e_i(s, a^i) . e_j(s, a^j) with e_i in R^pair_rank, so that the
    # critic can say that one torque's best value depends on another's. Its expectation under
    # independent sub-policies is still exact and cheap (the pair term of the mean
    # embeddings), so eq. 6 and eq. 11 keep their form, each sub-Q taking its pair terms in
    # expectation over the other dimensions' policies.
    # Not in the paper, "joint": one network Q(s, a) with the whole action as its input (the
    # bins' positions for binned torques), as continuous SAC's critic, regressed on
    # r + gamma [Q(s', a') + sum_i alpha_i H(pi^i(s'))] at a sampled a' ~ pi(s'). Each head's
    # sub-Q Q^i(s, .) is then Q with dimension i set to each of its values and the others at
    # one action sampled from the policy: an unbiased estimate of the paper's
    # E_{a^-i ~ pi^-i}[Q(s, a)], so eq. 11 summed over the heads is, in expectation, the
    # joint policy's own soft policy loss (sub_q_states below sets what that costs).
    critic: Literal["per_dimension", "additive", "pairwise", "joint"] = "per_dimension"
    pair_rank: Annotated[int, NB, Field(gt=0, le=256)] = 8
    # Joint critic only: on how many of the batch's states the heads' sub-Qs are evaluated
    # for eq. 11 (the first ones; the batch is a random draw), each head at every one of its
    # values. A state costs sum_i n_i critic rows per twin (66 on HalfCheetah), so the whole
    # batch would cost 66 times continuous SAC's policy step; with 32 an update costs about
    # 1.3 times the additive critic's on a CPU, with 64 twice (benchmarks/critic_rows.py).
    sub_q_states: Annotated[int, NB, Field(gt=0, le=65_536)] = 32
    # Additive or pairwise critic only (a joint critic has one value, whose twin minimum is
    # taken as continuous SAC's is): the twin minimum in its target taken per dimension
    # (each sub-Q's soft value the smaller of its twins', then summed) or of the joint soft
    # values (the smaller of the twins' sums, as continuous SAC takes it of its joint Q). The
    # first sums k minima, each biased low, and is the more pessimistic; yet on HalfCheetah
    # "joint" measured worse on every seed (README, "Measured"), so it is not the default.
    twin_min: Literal["per_dimension", "joint"] = "per_dimension"
    hidden_sizes: HiddenSizes = Field(default_factory=lambda: [256, 256])
    activation: Literal["relu", "tanh"] = "relu"
    buffer_size: Annotated[int, NB, Field(gt=0, le=10_000_000)] = 1_000_000
    batch_size: Annotated[int, NB, Field(gt=0, le=65_536)] = 256
    learning_starts: Annotated[int, NB, Field(ge=0, le=MAX_STEPS)] = 5000
    update_every: Annotated[int, NB, Field(gt=0, le=1_000_000)] = 1
    gradient_steps: Annotated[int, NB, Field(gt=0, le=1000)] = 1
    normalize_observations: bool = False
    # Not in the paper: clip the critics' gradient to this norm before each step (None: no
    # clipping). A candidate against the critic blow-ups seen on HalfCheetah, where the loss
    # jumps a hundredfold and the cheetah flips; metrics.csv logs the unclipped norm
    # (q_grad_norm) to choose it from.
    critic_max_grad_norm: PositiveFloat | None = None
    # Not in the paper: LayerNorm on every hidden layer of the critics (sub-Qs and up-Qs;
    # not the policy). Normalized features bound how far a Q-value can extrapolate, the
    # usual remedy in the literature for critics that overestimate and diverge. On
    # HalfCheetah it held the critic but learned more slowly (README, "Measured").
    critic_layer_norm: bool = False
    # Not in the paper, independent and evenly spaced values only (binned torques): each
    # sub-Q a polynomial of this degree in its bin's position instead of one free value per
    # bin (None), so that what the critic learns of one torque reaches the torques next to
    # it, as a continuous critic's smoothness in the action does. On HalfCheetah a cubic
    # learned more slowly (README, "Measured").
    sub_q_degree: Annotated[int, NB, Field(ge=0, le=255)] | None = None
    # PolicyDegree's heads (above). On HalfCheetah they led every other variant at 50k and
    # trailed the preset at 100k and 175k (README, "Measured").
    policy_degree: PolicyDegree = None
    # Not in the paper, independent and evenly spaced values only: Tang and Agrawal's (2020)
    # ordinal heads, whose outputs are one sigmoid score per bin and whose logit for bin k
    # sums log p_j below and at k and log(1 - p_j) above it, so that neighbouring torques
    # share probability while a head may still be as sharp as a free one. They found it
    # helped discretized PPO most on high-dimensional tasks.
    policy_ordinal: bool = False
    # Independent only: each head pulled towards softmax(Q^i / alpha_i) by eq. 11, the
    # reverse KL (the paper), or, not in the paper, by the forward KL, whose gradient does
    # not vanish on a sub-action the head has all but ruled out, so that the policy keeps up
    # when its critic changes its mind. On HalfCheetah it evened the seeds at 100k but
    # learned no faster, and its entropy no longer follows the temperature (README).
    policy_loss: Literal["reverse_kl", "forward_kl"] = "reverse_kl"
    # Independent only: a policy network that learns to follow its critic (the paper), or,
    # not in the paper, no policy network at all: each head *is* softmax(min-twin Q^i /
    # alpha_i) of the online sub-Qs, the policy both KLs above are minimized by, so it never
    # lags behind its critic, and its entropy is set by the temperature alone, which eq. 13
    # then tunes to the target exactly. On HalfCheetah it learned no faster at 100k, a
    # quarter cheaper per step (README, "Measured").
    actor: Literal["network", "boltzmann"] = "network"


AgentConfig = Annotated[FPPOConfig | FSACConfig, Field(discriminator="algo")]


class TrainConfig(_Section):
    """Budget, evaluation and checkpoint cadence, seed."""

    total_steps: Count = 1_000_000
    eval_every: Count = 25_000
    eval_episodes: Annotated[int, NB, Field(gt=0, le=1_000_000)] = 10
    checkpoint_every: Count = 100_000
    log_every: Count = 1000  # steps between rows of metrics.csv (agent metrics averaged)
    seed: Annotated[int, NB, Field(ge=0, le=2**32 - 1)] = 0
    save_buffer: bool = False  # FSAC: put the replay buffer into checkpoints
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when there is one
    compile: bool = False  # torch.compile the agent's update (pays off on a GPU, not on CPU)


class Preset(_Section):
    """One experiment: environment, agent and training."""

    name: str = "custom"
    description: str = ""
    env: EnvConfig
    agent: AgentConfig
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _rollout_fits_the_envs(self) -> Preset:
        if isinstance(self.agent, FPPOConfig) and self.agent.rollout_steps % self.env.num_envs:
            raise ValueError(
                f"agent.rollout_steps ({self.agent.rollout_steps}) must be a multiple of "
                f"env.num_envs ({self.env.num_envs})"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved preset, every default written out."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------- locating presets


def presets_dir() -> Path:
    """The bundled presets: inside the installed package, else the checkout's ``presets/``."""
    bundled = resources.files("farl_cli") / "presets"
    if bundled.is_dir():
        return Path(str(bundled))
    return Path(__file__).resolve().parent.parent / "presets"


def preset_names() -> list[str]:
    """Names of the bundled presets, sorted."""
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def resolve_preset_path(target: str) -> Path | None:
    """A bundled preset's file by name, the file itself if ``target`` is one, else None."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    candidate = presets_dir() / f"{target}.yaml"
    return candidate if candidate.is_file() else None


def unknown_preset_message(target: str) -> str:
    """What to say about a preset name that does not exist."""
    names = preset_names()
    close = difflib.get_close_matches(target, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown preset {target!r}; known: {', '.join(names)}.{hint}"


# ---------------------------------------------------------------------- loading


def load_preset(target: str, overrides: list[str] | None = None) -> Preset:
    """Load a preset by name or file, apply ``--set`` overrides and validate the result."""
    path = resolve_preset_path(target)
    if path is None:
        raise PresetError(unknown_preset_message(target))
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    for item in overrides or []:
        apply_override(data, item)
    return validate(data, source=str(path), overrides=overrides or [])


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from a file, or a PresetError naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: no such preset file") from None
    except IsADirectoryError:
        raise PresetError(f"{path}: a directory, not a preset file") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise PresetError(f"{path}: not a YAML text file (it is not UTF-8)") from None
    if not text.strip():
        raise PresetError(f"{path}: the file is empty; expected sections env, agent and train")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PresetError(f"{path}:{where}: {problem}") from None
    if not isinstance(data, dict):
        raise PresetError(
            f"{path}: expected a mapping with sections env, agent and train, "
            f"got {type(data).__name__}"
        )
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 3e-4 as a string; YAML 1.2, and every user, as a number
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_value(raw: str) -> Any:
    """A command-line value read as YAML 1.2 (``3e-4`` is a number), else kept as text."""
    try:
        return yaml.load(raw, Loader=_UniqueKeyLoader) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override; the value is read as YAML."""
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise PresetError(f"--set {item!r}: expected section.key=value, e.g. env.bins=21")
    value = read_value(raw)
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise PresetError(f"--set {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def validate(data: dict[str, Any], source: str, overrides: Sequence[str] = ()) -> Preset:
    """Validate raw preset data; errors name ``source``, the overrides applied, and the key."""
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        origin = f"{source} (with {', '.join(overrides)})" if overrides else source
        raise PresetError(format_errors(exc, origin, data)) from None


def _key_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    # a discriminated union puts the tag into the location: agent.fppo.lr -> agent.lr
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "agent" and parts[1] in ("fppo", "fsac"):
        del parts[1]
    return ".".join(parts) if parts else "(top level)"


def _allowed_keys(loc: tuple[Any, ...], data: dict[str, Any]) -> list[str]:
    model: type[BaseModel] = Preset
    section = str(loc[0]) if len(loc) > 1 else None
    if section == "env":
        model = EnvConfig
    elif section == "train":
        model = TrainConfig
    elif section == "agent":
        agent = data.get("agent")
        algo = agent.get("algo") if isinstance(agent, dict) else None
        model = FSACConfig if algo == "fsac" else FPPOConfig
    return list(model.model_fields)


def format_errors(exc: ValidationError, origin: str, data: dict[str, Any]) -> str:
    """One line per problem: ``file: key: what was expected (got ...)``."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        key = _key_path(loc, data)
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc, data))
            msg = f"unknown key (allowed here: {allowed})"
        elif err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            msg = "agent.algo must be 'fppo' or 'fsac'"
        else:
            msg = err["msg"]
            if err["type"] not in ("missing", "value_error"):
                msg += f" (got {err.get('input')!r})"
            if err["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
        lines.append(f"{origin}: {key}: {msg}")
    return "\n".join(lines)
