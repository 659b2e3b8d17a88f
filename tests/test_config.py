"""Preset schema: every bundled preset validates; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farl_cli.config import (
    FPPOConfig,
    FSACConfig,
    PresetError,
    load_preset,
    preset_names,
    presets_dir,
)

EXPECTED = {
    "platform-fppo",
    "platform-fsac",
    "hopper-fppo",
    "hopper-fsac",
    "halfcheetah-fppo",
    "halfcheetah-fsac",
    "walker2d-fppo",
    "walker2d-fsac",
    "humanoid-fppo",
    "humanoid-fsac",
    "football-3v1-fppo",
    "football-3v1-fppo-independent",
}


def test_every_expected_preset_is_bundled_and_valid() -> None:
    assert set(preset_names()) >= EXPECTED
    for name in preset_names():
        preset = load_preset(name)
        assert preset.name == name
        algo = name.split("-")[-1] if not name.endswith("independent") else "fppo"
        assert preset.agent.algo == algo


def test_paper_hyperparameters_are_in_the_presets() -> None:
    p = load_preset("platform-fppo")
    assert isinstance(p.agent, FPPOConfig)
    assert (p.env.bins, p.env.factorization) == (21, "autoregressive")
    assert (p.agent.gae_lambda, p.agent.minibatch_size, p.agent.clip_epsilon) == (1.0, 64, 0.2)
    assert (p.agent.epochs, p.agent.rollout_steps, p.agent.hidden_sizes) == (20, 512, [128, 128])
    s = load_preset("platform-fsac")
    assert isinstance(s.agent, FSACConfig)
    assert (s.agent.tau, s.agent.batch_size, s.agent.learning_rate) == (0.01, 256, 3e-4)
    f = load_preset("football-3v1-fppo")
    assert (f.agent.clip_epsilon, f.agent.minibatch_size, f.agent.epochs) == (0.08, 375, 2)
    assert f.env.factorization == "autoregressive"
    assert load_preset("football-3v1-fppo-independent").env.factorization == "independent"
    humanoid = load_preset("humanoid-fsac").agent
    assert isinstance(humanoid, FSACConfig) and humanoid.entropy_target_beta <= 0.1


def test_the_additive_critic_is_the_default_only_where_it_was_measured_better() -> None:
    fsac = {name: load_preset(name).agent for name in preset_names() if name.endswith("-fsac")}
    additive = {name for name, agent in fsac.items() if getattr(agent, "critic", "") == "additive"}
    assert additive == {"halfcheetah-fsac", "hopper-fsac"}


def test_the_kl_penalty_is_off_only_where_it_was_measured_better() -> None:
    fppo = {name: load_preset(name).agent for name in preset_names() if "-fppo" in name}
    without = {name for name, agent in fppo.items() if agent.kl_coef == 0.0}
    assert without == {"hopper-fppo", "humanoid-fppo"}


def write(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return yaml.safe_load((presets_dir() / "platform-fppo.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (lambda d: d["env"].update(bins=1), "env.bins", "greater than or equal to 2"),
        (lambda d: d["agent"].update(learning_rate=-1e-3), "agent.learning_rate", "greater than 0"),
        (lambda d: d["agent"].update(lr=1e-3), "agent.lr", "unknown key (allowed here: algo,"),
        (lambda d: d["train"].update(total_steps="many"), "train.total_steps", "valid integer"),
        (lambda d: d["env"].update(factorization="joint"), "env.factorization", "autoregressive"),
        (lambda d: d["agent"].update(algo="dqn"), "agent", "'fppo' or 'fsac'"),
        (lambda d: d.update(extra={}), "extra", "unknown key"),
        (lambda d: d.pop("env"), "env", "Field required"),
        (lambda d: d["env"].update(num_envs=3), "(top level)", "multiple of env.num_envs"),
    ],
)
def test_a_bad_preset_names_the_file_and_the_key(
    tmp_path: Path,
    mutate,
    key: str,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    data = base()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message


def test_overrides_are_applied_and_validated_the_same_way() -> None:
    p = load_preset("platform-fppo", ["env.bins=31", "agent.hidden_sizes=[64, 64]", "train.seed=7"])
    assert (p.env.bins, p.agent.hidden_sizes, p.train.seed) == (31, [64, 64], 7)
    with pytest.raises(PresetError, match=r"\(with --set overrides\): env.bins: .*>= 2|equal to 2"):
        load_preset("platform-fppo", ["env.bins=1"])
    with pytest.raises(PresetError, match=r"agent\.gamma_: unknown key"):
        load_preset("platform-fppo", ["agent.gamma_=0.9"])
    with pytest.raises(PresetError, match=r"expected section\.key=value"):
        load_preset("platform-fppo", ["bins=3"])


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(PresetError, match="Did you mean 'hopper-fsac'"):
        load_preset("hoper-fsac")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("env:\n  name: platform\n  bins: [1, 2\n")
    with pytest.raises(PresetError, match=rf"{path}: line \d+"):
        load_preset(str(path))


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset(str(tmp_path / "nope.yaml"))
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(PresetError, match="expected a mapping"):
        load_preset(str(path))


def test_resolved_preset_round_trips_through_yaml(tmp_path: Path) -> None:
    p = load_preset("hopper-fsac")
    path = tmp_path / "resolved.yaml"
    path.write_text(p.to_yaml())
    assert load_preset(str(path)) == p


def test_the_small_replay_buffer_is_the_default_only_where_it_was_measured_better() -> None:
    fsac = {name: load_preset(name).agent for name in preset_names() if name.endswith("-fsac")}
    small = {name for name, agent in fsac.items() if getattr(agent, "buffer_size", 0) < 10**6}
    assert small >= {"walker2d-fsac", "humanoid-fsac"}
    assert not small & {"hopper-fsac", "halfcheetah-fsac"}
