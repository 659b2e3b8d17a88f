"""farl sweep, farl tune and Ray environment workers, on a real local Ray (2 CPUs)."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import start_farl, wait_for_first_row
from typer.testing import CliRunner

from farl_cli.cli import app
from farl_cli.config import PresetError, load_preset
from farl_cli.runs import read_index
from farl_cli.sweep import (
    SweepError,
    parse_dimension,
    parse_grid,
    parse_space,
    plan_sweep,
    run_sweep,
    run_tune,
    split_values,
)
from farl_cli.training import StopRequest, train

ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[ray]"')
runner = CliRunner()

# A tiny Platform budget: one rollout of 512 steps per evaluation, two evaluations.
TINY = [
    "train.total_steps=1024",
    "train.eval_every=512",
    "train.eval_episodes=2",
    "train.checkpoint_every=512",
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One Ray on this machine for the module (starting it takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


# ---------------------------------------------------------------------- parsing


def test_values_split_at_top_level_commas_only() -> None:
    assert split_values("0.1,2,[64,64],'a,b'") == ["0.1", "2", "[64,64]", "'a,b'"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["agent.learning_rate="], "an empty value"),
        (["agent.learning_rate=1,,2"], "an empty value"),
        (["learning_rate=1,2"], "expected section.key=value1,value2"),
        (["agent.gamma=0.9", "agent.gamma=0.99"], "given twice"),
        (["agent.gamma=0.9,0.9"], "a value is given twice"),
    ],
)
def test_bad_grids_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_grid(items)


def test_a_sweep_has_a_run_per_configuration_and_seed(tmp_path: Path) -> None:
    grid = ["agent.entropy_coef=0.01,0.05", "agent.hidden_sizes=[32,32],[64]"]
    sweep = plan_sweep("platform-fppo", 3, grid, TINY, root=tmp_path)
    assert len(sweep.configs) == 4 and len(sweep.trials) == 12
    assert len({t.run_dir for t in sweep.trials}) == 12
    trial = next(t for t in sweep.trials if t.seed == 2 and "[64]" in t.config)
    assert trial.preset["agent"]["hidden_sizes"] == [64]
    assert trial.preset["train"]["seed"] == 2 and trial.total_steps == 1024
    assert trial.run_dir.parent.parent == (tmp_path / "platform-fppo").absolute()
    # the same command re-opens it; another grid under the same name is refused
    plan_sweep("platform-fppo", 3, grid, TINY, root=tmp_path)
    with pytest.raises(SweepError, match="holds another sweep"):
        plan_sweep("platform-fppo", 3, ["agent.entropy_coef=0.1,0.2"], TINY, root=tmp_path)


def test_a_sweep_begun_before_a_new_key_or_a_reworded_description_continues(
    tmp_path: Path,
) -> None:
    plan_sweep("platform-fsac", 1, [], TINY, root=tmp_path)
    record = tmp_path / "platform-fsac" / "sweep.json"
    older = json.loads(record.read_text())
    del older["preset"]["agent"]["critic_max_grad_norm"]  # as an earlier farl wrote it
    older["preset"]["description"] = "worded otherwise"
    record.write_text(json.dumps(older))
    plan_sweep("platform-fsac", 1, [], TINY, root=tmp_path)
    with pytest.raises(SweepError, match="holds another sweep"):  # a real change still counts
        plan_sweep("platform-fsac", 1, [], [*TINY, "agent.critic_max_grad_norm=10"], root=tmp_path)


def test_a_refusal_names_the_option_that_names_the_sweep(tmp_path: Path) -> None:
    plan_sweep("platform-fppo", 1, [], TINY, "bench", tmp_path, name_flag="--label")
    with pytest.raises(SweepError, match="give --label to start a new one"):
        plan_sweep("platform-fppo", 1, ["agent.entropy_coef=0.1"], TINY, "bench", tmp_path,
                   name_flag="--label")  # fmt: skip
    with pytest.raises(SweepError, match="--name 'a/b': give a plain name"):
        plan_sweep("platform-fppo", 1, [], TINY, "a/b", tmp_path)


def test_an_unknown_grid_key_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"agent\.foo: unknown key"):
        plan_sweep("platform-fppo", 1, ["agent.foo=1,2"], [], root=tmp_path)
    assert not (tmp_path / "platform-fppo").exists()


def test_a_trial_larger_than_the_machine_is_refused(tmp_path: Path) -> None:
    sweep = plan_sweep("platform-fppo", 1, [], TINY, root=tmp_path)
    with pytest.raises(SweepError, match="more than the 1 CPU"):
        run_sweep(sweep, cpus_per_trial=2, num_cpus=1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("log:1,2", "KIND one of"),
        ("uniform:2,1", "LOW < HIGH"),
        ("loguniform:0,1", "LOW > 0"),
        ("int:1.5,3", "whole numbers"),
        ("choice:7", "two values"),
    ],
)
def test_bad_search_ranges_are_refused(spec: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_dimension("agent.gamma", spec, "--space")


def test_search_space_from_options_and_a_file(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("agent.learning_rate: loguniform:1e-4,1e-2\nagent.epochs: int:2,8\n")
    dims = parse_space(["agent.hidden_sizes=choice:[32,32],[64,64]"], space)
    assert [(d.key, d.kind, d.values) for d in dims] == [
        ("agent.learning_rate", "loguniform", (1e-4, 1e-2)),
        ("agent.epochs", "int", (2, 8)),
        ("agent.hidden_sizes", "choice", ([32, 32], [64, 64])),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--preset", "platform-fppo", "--grid", "agent.foo=1,2"], "agent.foo"),
        (["sweep", "--preset", "platform-fppo", "--grid", "agent.gamma="], "an empty value"),
        (["sweep", "--preset", "platform-fppo", "--address", "127.0.0.1:1"], "no Ray cluster"),
        (["tune", "--preset", "platform-fppo"], "needs a search space"),
        (["tune", "--preset", "platform-fppo", "--space", "agent.foo=uniform:0,1"], "agent.foo"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())


# ---------------------------------------------------------------------- on Ray


def _metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.usefixtures("local_ray")
def test_sweep_runs_every_trial_summarizes_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--preset", "platform-fppo", "--seeds", "2", "--quiet", "--name", "s"]
    args += ["--grid", "agent.entropy_coef=0.01,0.05"]
    for item in TINY:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep_dir = tmp_path / "sweeps" / "s"
    for coef in ("0.01", "0.05"):
        for seed in (0, 1):
            run_dir = sweep_dir / f"agent.entropy_coef={coef}" / f"seed{seed}"
            assert read_index(run_dir)["last.pt"] == 1024
            steps = [int(r["step"]) for r in _metrics_rows(run_dir) if r["eval_return"]]
            assert steps == [512, 1024]
    with (sweep_dir / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == ["agent.entropy_coef=0.01", "agent.entropy_coef=0.05"]
    assert all(r["seeds"] == "2" and r["step"] == "1024" for r in rows)
    assert all(float(r["final_iqm_low"]) <= float(r["final_iqm_high"]) for r in rows)
    assert all(r["commit"] and r["command"].startswith("farl ") for r in rows)
    assert (sweep_dir / "curves.png").stat().st_size > 0
    assert "agent.entropy_coef=0.05" in result.output and "solved" in result.output

    # the same command again: nothing is run twice
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("metrics.csv")}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("metrics.csv")} == before

    # farl plot draws a sweep as it draws runs
    out = tmp_path / "sweep.png"
    plotted = runner.invoke(app, ["plot", str(sweep_dir), "--out", str(out)])
    assert plotted.exit_code == 0, plotted.output
    assert out.stat().st_size > 0 and "4" in plotted.output


@pytest.mark.usefixtures("local_ray")
def test_a_continued_sweep_resumes_interrupted_trials_and_keeps_finished_ones(
    tmp_path: Path,
) -> None:
    sweep = plan_sweep("platform-fppo", 2, [], TINY, root=tmp_path)
    finished, interrupted = sweep.trials
    from farl_cli.config import Preset

    train(Preset.model_validate(finished.preset), finished.run_dir)
    stop = StopRequest()

    def stop_after_first_row(step: int, _sps: float, _row: dict[str, Any]) -> None:
        if step >= 512:
            stop.signal = "SIGINT"

    partial = train(
        Preset.model_validate(interrupted.preset),
        interrupted.run_dir,
        on_progress=stop_after_first_row,
        stop=stop,
    )
    assert partial.status == "interrupted" and partial.global_step < 1024
    assert [finished.state(), interrupted.state()] == ["done", "partial"]
    kept = (finished.run_dir / "metrics.csv").stat().st_mtime_ns

    status = run_sweep(sweep)
    assert len(status.done) == 2 and not status.failed
    assert (finished.run_dir / "metrics.csv").stat().st_mtime_ns == kept
    record = json.loads((interrupted.run_dir / "run.json").read_text())
    assert [r["step"] for r in record["resumes"]] == [partial.global_step]
    steps = [int(r["step"]) for r in _metrics_rows(interrupted.run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 1024  # no step logged twice


@pytest.mark.usefixtures("local_ray")
def test_a_larger_budget_continues_finished_trials_and_a_smaller_one_is_refused(
    tmp_path: Path,
) -> None:
    sweep = plan_sweep("platform-fppo", 1, [], TINY, root=tmp_path)
    assert len(run_sweep(sweep).done) == 1
    (trial,) = sweep.trials
    before = _metrics_rows(trial.run_dir)

    longer = plan_sweep("platform-fppo", 1, [], [*TINY, "train.total_steps=1536"], root=tmp_path)
    (extended,) = longer.trials
    assert extended.run_dir == trial.run_dir and extended.state() == "partial"
    assert len(run_sweep(longer).done) == 1 and extended.state() == "done"
    rows = _metrics_rows(trial.run_dir)
    assert rows[: len(before)] == before  # the first 1,024 steps are kept, not redone
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 1536
    record = json.loads((trial.run_dir / "run.json").read_text())
    assert [r["step"] for r in record["resumes"]] == [1024]
    saved = json.loads((tmp_path / "platform-fppo" / "sweep.json").read_text())
    assert saved["preset"]["train"]["total_steps"] == 1536

    with pytest.raises(
        SweepError, match=r"a budget of 1536 steps \(train\.total_steps\); give at least"
    ):
        plan_sweep("platform-fppo", 1, [], TINY, root=tmp_path)
    with pytest.raises(SweepError, match="holds another sweep"):
        plan_sweep("platform-fppo", 1, [], [*TINY, "agent.entropy_coef=0.1"], root=tmp_path)


@pytest.mark.usefixtures("local_ray")
def test_a_failing_trial_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    sweep = plan_sweep("platform-fppo", 2, [], TINY, root=tmp_path)
    broken = sweep.trials[1]
    broken.run_dir.mkdir(parents=True)
    (broken.run_dir / "checkpoints").mkdir()
    (broken.run_dir / "checkpoints" / "step-512.pt").write_text("not a checkpoint")
    status = run_sweep(sweep)
    assert status.done == [sweep.trials[0]]
    assert [t for t, _ in status.failed] == [broken]
    assert "step-512.pt" in status.failed[0][1]


@pytest.mark.usefixtures("local_ray")
def test_tune_runs_two_trials_and_writes_a_trainable_preset(tmp_path: Path) -> None:
    dims = parse_space(["agent.entropy_coef=loguniform:0.01,0.1"], None)
    result = run_tune("platform-fppo", dims, 2, TINY, root=tmp_path)
    assert len(result.rows) == 2 and not any(r["error"] for r in result.rows)
    assert all(0.01 <= r["agent.entropy_coef"] <= 0.1 for r in result.rows)
    assert result.best_preset is not None
    tuned = load_preset(str(result.best_preset))
    assert tuned.agent.entropy_coef == result.best["agent.entropy_coef"]
    assert tuned.name == "platform-fppo-tuned" and tuned.train.total_steps == 1024
    assert len(list((tmp_path / "platform-fppo-tune" / "trials").iterdir())) == 2


@pytest.mark.usefixtures("local_ray")
def test_ray_environments_match_the_synchronous_ones() -> None:
    from farl_cli.envs.vector import make_vector_env

    cfg = load_preset("platform-fppo", ["env.num_envs=4"]).env
    sync = make_vector_env(cfg)
    remote = make_vector_env(cfg.model_copy(update={"vector": "ray"}))
    actors = list(remote.actors)
    try:
        a, b = sync.reset(seed=5), remote.reset(seed=5)
        np.testing.assert_array_equal(a[0], b[0])
        ended = 0
        for _ in range(300):
            actions = sync.action_space.sample()
            s, r = sync.step(actions), remote.step(actions)
            for x, y in zip(s[:4], r[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            assert s[4].keys() == r[4].keys()
            if "_final_obs" in s[4]:
                np.testing.assert_array_equal(s[4]["_final_obs"], r[4]["_final_obs"])
                for i in np.flatnonzero(s[4]["_final_obs"]):
                    np.testing.assert_array_equal(s[4]["final_obs"][i], r[4]["final_obs"][i])
            ended += int((s[2] | s[3]).sum())
        assert ended > 10  # the comparison covered resets in the same step
        states = [g.bit_generator.state for g in remote.get_attr("np_random")]
        assert states == [g.bit_generator.state for g in sync.get_attr("np_random")]
    finally:
        sync.close()
        remote.close()
    assert _gone(actors[0])  # closed means gone


def test_ctrl_c_with_ray_environments_saves_and_leaves_no_ray_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start_farl(
        "train", "--preset", "platform-fppo", "--set", "env.vector=ray",
        "--total-steps", "100000", "--run-dir", str(run_dir), "--quiet",
    )  # fmt: skip
    try:
        wait_for_first_row(run_dir / "metrics.csv", timeout=180)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Resume with: farl train --resume" in err and "Traceback" not in err
    assert read_index(run_dir).get("last.pt", 0) > 0
    deadline = time.monotonic() + 60  # workers exit shortly after Ray shuts down
    while _env_actor_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _env_actor_processes() == []


def _env_actor_processes() -> list[Path]:
    return [
        p for p in Path("/proc").iterdir()
        if p.name.isdigit() and _cmdline(p).startswith("ray::EnvActor")
    ]  # fmt: skip


def _gone(actor: Any, timeout: float = 60.0) -> bool:
    """Whether a Ray actor dies within ``timeout`` (``ray.kill`` takes effect asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(actor.spaces.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return True
        except ray.exceptions.GetTimeoutError:
            pass
        time.sleep(0.5)
    return False


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
