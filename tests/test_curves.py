"""Learning-curve statistics against direct computations; farl plot end to end."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from farl_cli.cli import app
from farl_cli.curves import (
    Curves,
    bootstrap_ci,
    find_runs,
    iqm,
    load_source,
    read_seed_csv,
    source_commit,
    trimmed_mean,
)
from farl_cli.errors import FarlError

runner = CliRunner()


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    values = np.array([0.0, 10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -100.0, 100.0])
    # 10 values: 2 cut from each end (int(0.25 * 10)), the mean of the middle 6
    assert iqm(values) == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert trimmed_mean(np.arange(8.0), 0.25) == pytest.approx(np.mean([2, 3, 4, 5]))
    rows = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    assert iqm(rows, axis=-1) == pytest.approx([2.5, 25.0])


def test_bootstrap_interval_brackets_the_statistic_and_shrinks_with_agreement() -> None:
    rng = np.random.default_rng(0)
    spread, tight = rng.normal(0.5, 0.3, 10), rng.normal(0.5, 0.01, 10)
    low, high = bootstrap_ci(spread)
    assert low <= iqm(spread) <= high
    t_low, t_high = bootstrap_ci(tight)
    assert t_high - t_low < (high - low) / 5
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_ci(spread, seed=3) == bootstrap_ci(spread, seed=3)  # reproducible


def write_run(root: Path, seed: int, evals: dict[int, tuple[float, float]]) -> Path:
    run = root / f"run{seed}"
    run.mkdir(parents=True)
    (run / "preset.yaml").write_text(f"train:\n  seed: {seed}\n")
    with (run / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "eval_return", "eval_success", "entropy"])
        for step in range(500, 3001, 500):
            if step in evals:
                value, success = evals[step]
                writer.writerow([step, value, success, 1.0 / step])
            else:
                writer.writerow([step, "", "", 1.0 / step])
    return run


def test_curves_from_runs_tables_summary_and_fraction_solved(tmp_path: Path) -> None:
    write_run(tmp_path, 4, {1000: (0.2, 0.0), 2000: (0.9, 1.0), 3000: (1.0, 1.0)})
    write_run(tmp_path, 7, {1000: (0.1, 0.0), 2000: (0.3, 0.5), 3000: (0.95, 0.96)})
    curves = Curves.from_runs(find_runs(tmp_path))
    assert curves.seeds == [4, 7] and curves.steps == [1000, 2000, 3000]
    assert curves.final().tolist() == [1.0, 0.95]
    assert curves.first_reaching(0.9) == [2000, 3000]
    summary = {row["step"]: row for row in curves.summary()}
    assert summary[2000]["mean"] == pytest.approx(0.6)
    assert summary[2000]["solved_fraction"] == 0.5  # success 1.0 and 0.5 against 0.95
    assert summary[3000]["solved_fraction"] == 1.0
    other = Curves.from_runs(find_runs(tmp_path), column="entropy")
    assert other.steps == [500, 1000, 1500, 2000, 2500, 3000] and not other.has_success


def test_farl_plot_writes_a_png_and_a_table(tmp_path: Path) -> None:
    write_run(tmp_path / "a", 0, {1000: (0.5, 0.0), 2000: (1.0, 1.0)})
    write_run(tmp_path / "a", 1, {1000: (0.7, 0.0), 2000: (1.0, 1.0)})
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["plot", str(tmp_path / "a"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "100%" in result.output and "2,000" in result.output
    bad = runner.invoke(app, ["plot", str(tmp_path / "a"), "--column", "nope"])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output


def test_farl_plot_without_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(tmp_path, 0, {1000: (0.5, 0.0)})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["plot", str(tmp_path), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 2 and "pip install matplotlib" in result.output


def test_a_learning_csv_is_a_source_too(tmp_path: Path) -> None:
    path = tmp_path / "peer.csv"
    path.write_text("step,seed,eval_return\n100,0,1.0\n200,0,3.0\n100,1,2.0\n200,1,5.0\n")
    curves = load_source(path)
    assert curves.seeds == [0, 1] and curves.steps == [100, 200]
    assert curves.final().tolist() == [3.0, 5.0] and not curves.has_success
    with pytest.raises(FarlError, match="evaluations only"):
        load_source(path, column="entropy")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FarlError, match="not a learning CSV"):
        load_source(tmp_path / "bad.csv")


def test_seeds_from_several_learning_csvs_join_and_a_repeated_seed_is_refused(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "s01.csv", tmp_path / "s2.csv"
    first.write_text("step,seed,eval_return\n100,0,1.0\n100,1,2.0\n")
    second.write_text("step,seed,eval_return\n100,2,6.0\n200,2,7.0\n")
    curves = read_seed_csv(first, second)
    assert curves.seeds == [0, 1, 2] and curves.steps == [100, 200]
    assert curves.returns[:, 0].tolist() == [1.0, 2.0, 6.0]
    assert np.isnan(curves.returns[0, 1]) and curves.returns[2, 1] == 7.0
    with pytest.raises(FarlError, match=r"s01.csv: seed\(s\) \[0, 1\] already read"):
        read_seed_csv(first, second, first)


def test_source_commit_is_dirty_for_any_tracked_change_but_results(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    files = ["farl_cli/a.py", "benchmarks/b.py", "presets/c.yaml", "benchmarks/results/d.csv"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    head = git("rev-parse", "HEAD")
    inside = tmp_path / "farl_cli"  # the package asks from its own directory
    assert source_commit(inside) == head
    (tmp_path / "benchmarks/results/d.csv").write_text("1\n")  # a benchmark's output
    assert source_commit(inside) == head
    for name in files[:3]:
        (tmp_path / name).write_text("1\n")
        assert source_commit(inside) == f"{head}+dirty", name
        git("checkout", "--", name)
