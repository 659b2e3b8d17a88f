"""The command line through Typer's runner and, once, as an installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

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
        "2.0716",
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
        [sys.executable, "-m", "farl_cli.cli", "inspect-actions", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "env.bins" in proc.stderr and "agent.learning_rate" in proc.stderr
    assert str(bad) in proc.stderr.replace("\n", "")
    assert "Traceback" not in proc.stderr
