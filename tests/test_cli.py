"""The command line through Typer's runner and, once, as an installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from helpers import group_members, start_farl, wait_for_first_row
from typer.testing import CliRunner

from farl_cli.checkpoint import load_checkpoint
from farl_cli.cli import app

runner = CliRunner()


def test_inspect_actions_humanoid_fsac_json() -> None:
    result = runner.invoke(app, ["inspect-actions", "humanoid-fsac", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["joint_actions"] == 505447028499293771
    assert info["joint_actions_scientific"] == "5.05e+17"
    assert len(info["dimensions"]) == 17
    assert info["uniform_entropy"] == pytest.approx(17 * 2.3978952728, rel=1e-9)
    assert info["entropy_target"] == pytest.approx(0.05 * info["uniform_entropy"])
    assert info["dimensions"][0]["entropy_target"] == pytest.approx(0.05 * 2.3978952728)
    assert (info["factored_head_outputs"], info["sampling"]) == (187, "parallel")


def test_inspect_actions_platform_fsac_table() -> None:
    result = runner.invoke(app, ["inspect-actions", "platform-fsac"], terminal_width=120)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "run, hop, leap",
        "3 x 21 = 63",
        "4.1431 nats",
        "sequential",
        "2.0716",  # beta 0.5 x 4.1431
        "720",
        "430",
    ):
        assert text in out


def test_inspect_actions_env_name_with_overrides() -> None:
    result = runner.invoke(
        app,
        ["inspect-actions", "hopper", "--bins", "5", "--factorization", "autoregressive", "--json"],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["joint_actions"] == 125 and info["sampling"] == "sequential"
    assert "entropy_target" not in info


def test_presets_lists_every_preset() -> None:
    result = runner.invoke(app, ["presets"], terminal_width=200)
    assert result.exit_code == 0
    assert "humanoid-fsac" in result.output and "football-3v1-fppo-independent" in result.output
    cells = {
        row[0]: row
        for line in result.output.splitlines()
        if len(row := [cell.strip() for cell in line.strip("│┃ ").split("│")]) > 3
    }
    assert cells["football-3v1-fppo"][3] == "-"  # discrete engine actions: nothing to bin
    assert cells["humanoid-fsac"][3] == "11"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect-actions", "platfrm"], "Did you mean 'platform'"),
        (["inspect-actions", "hopper", "--bins", "1"], "bins"),
        (["inspect-actions", "platform-fppo", "--factorization", "joint"], "env.factorization"),
        (["inspect-actions", "missing.yaml"], "no such preset file"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_preset_file_through_the_console_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: {name: platform, bins: 1}\nagent: {algo: fppo, learning_rate: -1}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "farl_cli", "inspect-actions", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "env.bins" in proc.stderr and "agent.learning_rate" in proc.stderr
    assert str(bad) in proc.stderr.replace("\n", "")
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- train, eval, enjoy

TINY = [
    "--set",
    "env.num_envs=2",
    "--set",
    "agent.rollout_steps=64",
    "--set",
    "agent.epochs=2",
    "--set",
    "agent.minibatch_size=32",
    "--set",
    "train.eval_every=128",
    "--set",
    "train.eval_episodes=4",
    "--set",
    "train.checkpoint_every=128",
    "--set",
    "train.log_every=64",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "platform-fppo",
            *TINY,
            "--total-steps",
            "256",
            "--run-dir",
            str(run),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "run finished" in result.output
    assert (run / "checkpoints" / "last.pt").is_file()
    return run


def test_train_writes_config_metrics_and_checkpoints(trained: Path) -> None:
    assert (trained / "preset.yaml").is_file()
    assert "train:\n  total_steps: 256" in (trained / "preset.yaml").read_text()
    assert "seed: 3" in (trained / "preset.yaml").read_text()
    header = (trained / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in (
        "step",
        "wall_time",
        "steps_per_second",
        "train_return",
        "eval_return",
        "policy_loss",
        "value_loss",
        "entropy",
        "kl",
        "clip_fraction",
    ):
        assert column in header
    assert {p.name for p in (trained / "checkpoints").iterdir()} >= {"last.pt", "best.pt"}


def test_eval_reports_statistics_and_success_rate(trained: Path) -> None:
    ckpt = str(trained / "checkpoints" / "best.pt")
    result = runner.invoke(app, ["eval", ckpt, "--episodes", "30", "--num-envs", "4", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["episodes"] == 30 and 0 <= info["mean"] <= 1
    assert info["min"] <= info["median"] <= info["max"] and info["ci95"] >= 0
    assert info["success_rate"] is not None and info["mean_length"] >= 1
    table = runner.invoke(
        app, ["eval", ckpt, "--episodes", "5", "--stochastic"], terminal_width=120
    )
    assert table.exit_code == 0 and "95% confidence interval" in table.output
    assert "success rate" in table.output


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_enjoy_records_a_video_headless(trained: Path, tmp_path: Path, suffix: str) -> None:
    video = tmp_path / f"play{suffix}"
    result = runner.invoke(
        app,
        [
            "enjoy",
            str(trained / "checkpoints" / "last.pt"),
            "--episodes",
            "1",
            "--video",
            str(video),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "episode 1: return" in result.output
    assert video.is_file() and video.stat().st_size > 1000


def start_endless_run(run: Path, *extra: str) -> subprocess.Popen[str]:
    """A Platform training run too long to finish, started and past its first metrics row."""
    proc = start_farl(
        "train", "--preset", "platform-fppo", *TINY, *extra,
        "--total-steps", "1000000", "--run-dir", str(run), "--quiet",
    )  # fmt: skip
    wait_for_first_row(run / "metrics.csv")
    return proc


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    import signal

    run = tmp_path / "run"
    proc = start_endless_run(run)
    metrics = run / "metrics.csv"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = run / "checkpoints" / "last.pt"
    assert f"Resume with: farl train --resume {last}\n" in err
    assert "Traceback" not in err
    rows_before = len(metrics.read_text().splitlines())
    steps_before = load_checkpoint(last)["counters"]["global_step"]
    assert steps_before >= 64
    result = runner.invoke(
        app, ["train", "--resume", str(last), "--total-steps", str(steps_before + 256), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert load_checkpoint(last)["counters"]["global_step"] == steps_before + 256
    lines = metrics.read_text().splitlines()
    assert len(lines) > rows_before and lines.count(lines[0]) == 1  # appended, one header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train"], "--preset is required"),
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--preset", "platform-fppo", "--set", "env.bins=1"], "env.bins"),
        (
            ["train", "--preset", "platform-fppo", "--set", "agent.learning_rate=-1"],
            "agent.learning_rate",
        ),
        (["train", "--preset", "platform-fppo", "--set", "oops"], "section.key=value"),
        (["train", "--resume", "missing.pt"], "no such checkpoint"),
        (["eval", "missing.pt"], "no such checkpoint"),
        (["enjoy", "missing.pt"], "no such checkpoint"),
    ],
)
def test_bad_training_input_is_a_clear_error(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


def test_eval_refuses_foreign_and_corrupt_files(tmp_path: Path) -> None:
    import torch

    foreign, corrupt = tmp_path / "foreign.pt", tmp_path / "corrupt.pt"
    torch.save({"state_dict": torch.zeros(2)}, foreign)
    corrupt.write_bytes(b"garbage" * 50)
    for path, message in ((foreign, "not a farl checkpoint"), (corrupt, "corrupt")):
        result = runner.invoke(app, ["eval", str(path)])
        assert result.exit_code == 2 and message in result.output


def test_enjoy_refuses_an_unknown_video_format(trained: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["enjoy", str(trained / "checkpoints" / "last.pt"), "--video", str(tmp_path / "x.avi")]
    )
    assert result.exit_code == 2 and ".mp4 or .gif" in result.output


def test_mujoco_train_and_enjoy_render_headless(tmp_path: Path) -> None:
    run = tmp_path / "hopper"
    result = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "hopper-fppo",
            "--total-steps",
            "256",
            "--run-dir",
            str(run),
            "--set",
            "env.num_envs=2",
            "--set",
            "agent.rollout_steps=128",
            "--set",
            "agent.epochs=1",
            "--set",
            "train.eval_episodes=1",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    video = tmp_path / "hopper.mp4"
    result = runner.invoke(
        app,
        ["enjoy", str(run / "checkpoints" / "last.pt"), "--episodes", "1", "--video", str(video)],
    )
    assert result.exit_code == 0, result.output
    assert video.is_file() and video.stat().st_size > 1000


@pytest.mark.parametrize("preset", ["platform-fsac", "hopper-fsac"])
def test_fsac_train_eval_enjoy_through_the_cli(preset: str, tmp_path: Path) -> None:
    run = tmp_path / preset
    result = runner.invoke(
        app,
        [
            "train",
            "--preset",
            preset,
            "--total-steps",
            "300",
            "--run-dir",
            str(run),
            "--set",
            "agent.hidden_sizes=[32, 32]",
            "--set",
            "agent.batch_size=32",
            "--set",
            "agent.learning_starts=100",
            "--set",
            "train.eval_every=300",
            "--set",
            "train.eval_episodes=2",
            "--set",
            "train.log_every=100",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "q_loss" in header and "alpha" in header
    assert ("up_q_loss" in header) == (preset == "platform-fsac")  # autoregressive only
    ckpt = str(run / "checkpoints" / "last.pt")
    result = runner.invoke(app, ["eval", ckpt, "--episodes", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["episodes"] == 3
    mean = runner.invoke(app, ["eval", ckpt, "--episodes", "2", "--greedy", "mean", "--json"])
    if preset == "hopper-fsac":  # binned torques: the mean bin is an action
        assert mean.exit_code == 0, mean.output
        assert json.loads(mean.output)["greedy"] == "mean"
    else:  # a choice and its parameter's bins, autoregressive: no mean bin
        assert mean.exit_code == 2 and "--greedy mean needs an independent" in mean.output
    for args, message in (
        (["--greedy", "mean", "--stochastic"], "drop --stochastic"),
        (["--greedy", "median"], "expected mode or mean"),
    ):
        refused = runner.invoke(app, ["eval", ckpt, *args])
        assert refused.exit_code == 2 and message in refused.output
        assert "Traceback" not in refused.output
    video = tmp_path / "play.gif"
    result = runner.invoke(app, ["enjoy", ckpt, "--episodes", "1", "--video", str(video)])
    assert result.exit_code == 0 and video.stat().st_size > 1000


def test_ctrl_c_to_the_whole_group_with_worker_processes_leaves_none_behind(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import time

    run = tmp_path / "async"
    proc = start_endless_run(run, "--set", "env.vector=async")
    assert len(group_members(proc.pid)) >= 3  # the main process and its two workers
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (run / "checkpoints" / "last.pt").is_file()
    deadline = time.time() + 10
    while group_members(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert group_members(proc.pid) == []


# ---------------------------------------------------------------- bad input, fuzzed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # --bins 0 was once taken as the default, 11
        (["inspect-actions", "platform", "--bins", "0"], "bins: Input should be greater than"),
        (["inspect-actions", "platform", "--factorization", "foo"], "'independent' or"),
        (["presets", "show", "nope"], "unknown preset 'nope'"),
    ],
)
def test_option_errors_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "http" not in result.output, result.output


def test_presets_show_prints_a_preset_that_trains_as_a_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["presets", "show", "platform-fppo"])
    assert result.exit_code == 0 and "entropy_coef" in result.output
    copy = tmp_path / "mine.yaml"
    copy.write_text(result.output)
    shown = runner.invoke(app, ["inspect-actions", str(copy), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["joint_actions"] == 63


def test_enjoy_names_a_missing_render_dependency_with_its_install_command(
    tmp_path: Path,
) -> None:
    import importlib.util

    run = tmp_path / "cartpole"
    trained = runner.invoke(
        app,
        ["train", "--preset", "platform-fppo", "--set", "env.name=gym:CartPole-v1",
         "--set", "env.num_envs=1", "--set", "agent.rollout_steps=64",
         "--total-steps", "64", "--run-dir", str(run), "--quiet"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    video = tmp_path / "cartpole.mp4"
    result = runner.invoke(
        app, ["enjoy", str(run / "checkpoints" / "last.pt"), "--video", str(video)]
    )
    if importlib.util.find_spec("pygame") is None:
        assert result.exit_code == 2, result.output
        assert 'pip install "gymnasium[classic-control]"' in result.output
        assert "Traceback" not in result.output
    else:
        assert result.exit_code == 0 and video.stat().st_size > 0


def test_sigterm_during_start_up_ends_with_one_line(tmp_path: Path) -> None:
    import signal
    import time

    proc = start_farl("train", "--preset", "platform-fppo", "--run-dir", str(tmp_path / "r"))
    time.sleep(1.5)  # importing torch, building the environment
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "nterrupted" in err


MUTANT_VALUES = [
    "true", ".inf", "-.inf", ".nan", "[]", "{}", "'x'", "1e400", "-1", "0",
    "9223372036854775807", "null", "[1, [2]]", "100000", "2.5", "[-3]", "{a: 1}",
]  # fmt: skip


def mutate(text: str, rng: Any) -> bytes:
    """One random corruption of a preset file."""
    lines = text.splitlines()
    kind = rng.integers(8)
    i = int(rng.integers(len(lines)))
    if kind == 0:  # delete a line
        del lines[i]
    elif kind in (1, 2, 3):  # a key's value becomes something else
        keyed = [
            j for j, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")
        ]
        j = keyed[int(rng.integers(len(keyed)))]
        key = lines[j].split(":", 1)[0]
        lines[j] = f"{key}: {MUTANT_VALUES[int(rng.integers(len(MUTANT_VALUES)))]}"
    elif kind == 4:  # a line given twice (a duplicate key)
        lines.insert(i, lines[i])
    elif kind == 5:  # broken YAML
        lines.insert(i, ["- [", ":", "\tkey: 1", "a: b: c", "'unclosed"][int(rng.integers(5))])
    elif kind == 6:  # binary garbage
        return bytes(rng.integers(0, 256, size=int(rng.integers(1, 400)), dtype=np.uint8))
    else:  # the same text in another encoding, or nothing at all
        return "\n".join(lines).encode("utf-16") if rng.integers(2) else b""
    return ("\n".join(lines) + "\n").encode()


def test_fuzzed_preset_files_and_overrides_never_give_a_traceback(tmp_path: Path) -> None:
    """Random corruptions of a preset: exit 0 or 2, never a traceback (once 37 of 400 were)."""
    from farl_cli.config import presets_dir

    rng = np.random.default_rng(2026)
    text = (presets_dir() / "platform-fppo.yaml").read_text()
    outcomes = {0: 0, 2: 0}
    for n in range(160):
        path = tmp_path / f"m{n}.yaml"
        path.write_bytes(mutate(text, rng))
        commands = [["inspect-actions", str(path)]]
        if n % 4 == 0:  # training is slower: a quarter of them, one step each
            commands.append(
                ["train", "--preset", str(path), "--total-steps", "1", "--quiet",
                 "--run-dir", str(tmp_path / f"run{n}")]
            )  # fmt: skip
        if n % 4 == 1:  # the same values through --set
            key = ["env.bins", "agent.epochs", "agent.clip_epsilon", "train.total_steps",
                   "agent.hidden_sizes", "env.num_envs", "train.seed"][n % 7]  # fmt: skip
            value = MUTANT_VALUES[int(rng.integers(len(MUTANT_VALUES)))]
            commands.append(["inspect-actions", "platform-fppo", "--json"])
            commands.append(
                ["train", "--preset", "platform-fppo", "--set", f"{key}={value}",
                 "--total-steps", "1", "--quiet", "--run-dir", str(tmp_path / f"set{n}")]
            )  # fmt: skip
        for args in commands:
            result = runner.invoke(app, args)
            context = f"{args} with {path.read_bytes()[:300]!r}:\n{result.output}"
            assert result.exit_code in (0, 2), context
            assert not isinstance(result.exception, Exception), context
            assert "Traceback" not in result.output, context
            outcomes[result.exit_code] += 1
    assert outcomes[0] > 10 and outcomes[2] > 50, outcomes  # both kinds were exercised


def test_a_preset_the_agent_refuses_is_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "--preset", "platform-fsac", "--set", "agent.critic=additive"]
    result = runner.invoke(app, [*args, "--run-dir", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert "agent.critic: additive needs an independent factorization" in result.output
    assert "Traceback" not in result.output and not run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_one_is_one_line_before_anything_is_written(
    trained: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--preset", "platform-fppo", "--device", "cuda", "--run-dir", str(run_dir)]
    )
    assert result.exit_code == 2 and "no CUDA device" in result.output, result.output
    assert not run_dir.exists()
    best = trained / "checkpoints" / "best.pt"
    for command in ("eval", "enjoy"):
        result = runner.invoke(app, [command, str(best), "--device", "cuda"])
        assert result.exit_code == 2 and "no CUDA device" in result.output, result.output
    result = runner.invoke(app, ["train", "--preset", "platform-fppo", "--device", "tpu"])
    assert result.exit_code == 2 and "train.device" in result.output, result.output


def test_an_import_broken_by_an_interrupt_counts_as_the_interrupt() -> None:
    from farl_cli.cli import user_errors
    from farl_cli.errors import interrupted

    def import_interrupted() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    assert interrupted(ImportError("x").with_traceback(None)) is False
    with pytest.raises(typer.Exit) as stopped:
        user_errors(import_interrupted)()
    assert stopped.value.exit_code == 130
    with pytest.raises(ValueError):
        user_errors(lambda: int("x"))()
