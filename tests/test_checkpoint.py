"""Checkpoints: atomic writes, and nothing but farl checkpoints is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from farl_cli.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_keeps_tensors_and_plain_data(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", {"w": torch.arange(3.0), "meta": {"step": 5}})
    data = load_checkpoint(path)
    assert torch.equal(data["w"], torch.arange(3.0)) and data["meta"] == {"step": 5}
    assert data["format"] == FORMAT and "farl_version" in data


def test_a_crash_mid_write_leaves_the_previous_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1})

    def crash(obj: object, f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


class Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "format_version": 1, "payload": Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="would run code"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00not a zip at all" * 10, "corrupt or not a checkpoint"),
        # text files renamed .pt once crashed with KeyError: 101, KeyError: 544502645 and
        # IndexError: pop from empty list
        (b"hello\n", "corrupt or not a checkpoint"),
        (b"notes about the run: lr 3e-4 did better\n", "corrupt or not a checkpoint"),
        (b"step,wall_time,eval_return\n1000,1.5,0.3\n", "corrupt or not a checkpoint"),
        ({"weights": torch.zeros(2)}, "not a farl checkpoint"),
        ({"format": FORMAT, "format_version": 99, "farl_version": "9.0"}, "format 99"),
    ],
)
def test_foreign_corrupt_or_incompatible_files_are_refused(
    tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", {"w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")


def test_numpy_values_are_saved_as_plain_data_that_loads_safely(tmp_path: Path) -> None:
    import numpy as np

    payload = {"x": np.float64(1.5), "n": [np.int64(3)], "a": np.arange(3)}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "n.pt", payload))
    assert loaded["x"] == 1.5 and type(loaded["x"]) is float
    assert loaded["n"] == [3] and type(loaded["n"][0]) is int
    assert torch.equal(loaded["a"], torch.arange(3))
