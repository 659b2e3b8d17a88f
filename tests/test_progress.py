"""The metrics CSV: new files get the run's columns, resumed ones widen to new metrics."""

from __future__ import annotations

import csv
from pathlib import Path

from farl_cli.progress import MetricsWriter


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_resumed_file_widens_to_new_metrics_and_keeps_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    old = MetricsWriter(path, ["step", "q_loss", "gone"], None)
    old.write({"step": 1, "q_loss": 2.0, "gone": 0.1})
    old.close()
    new = MetricsWriter(path, ["step", "q_loss", "q_grad_norm"], None)
    assert new.columns == ["step", "q_loss", "q_grad_norm", "gone"]
    new.write({"step": 2, "q_loss": 3.0, "q_grad_norm": 9.0})
    new.close()
    assert rows(path) == [
        {"step": "1", "q_loss": "2", "q_grad_norm": "", "gone": "0.1"},
        {"step": "2", "q_loss": "3", "q_grad_norm": "9", "gone": ""},
    ]


def test_a_resumed_file_with_the_same_metrics_keeps_its_header(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,alpha,q_loss\n1,0.1,2\n", encoding="utf-8")
    w = MetricsWriter(path, ["step", "q_loss", "alpha"], None)
    assert w.columns == ["step", "alpha", "q_loss"]
    w.write({"step": 2, "q_loss": 3.0, "alpha": 0.2})
    w.close()
    assert path.read_text(encoding="utf-8") == "step,alpha,q_loss\n1,0.1,2\n2,0.2,3\n"


def test_a_new_file_gets_the_columns_and_missing_values_stay_empty(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    w = MetricsWriter(path, ["step", "eval_return", "q_loss"], None)
    w.write({"step": 5, "q_loss": 1.5})
    w.close()
    assert rows(path) == [{"step": "5", "eval_return": "", "q_loss": "1.5"}]
