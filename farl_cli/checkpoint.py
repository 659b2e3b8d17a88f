"""Checkpoints: one ``.pt`` file, written atomically, loaded without executing code."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farl_cli import __version__
from farl_cli.errors import FarlError

FORMAT = "farl-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(FarlError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe, foreign or incompatible."""


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and numpy arrays as tensors: what a
    ``weights_only`` load accepts."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def named_tensors(tree: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint structure, by dotted path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items: Any = ()
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list | tuple):
        items = enumerate(tree)
    out: dict[str, torch.Tensor] = {}
    for key, value in items:
        out.update(named_tensors(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with format metadata; a crash mid-write leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "farl_version": __version__}
    data.update(plain(payload))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a farl checkpoint with ``weights_only=True``; anything else is refused."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global it does not know: that is what would run code
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if blocked:
            raise CheckpointError(
                f"{path}: refused: loading it would run code (it refers to {blocked.group(1)}; "
                "farl checkpoints hold only tensors and plain data)"
            ) from None
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (unreadable pickle)") from None
    except Exception as exc:
        # any failure to parse untrusted bytes means "corrupt": a text file renamed .pt
        # fails as KeyError, IndexError, UnicodeDecodeError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: corrupt or not a checkpoint ({type(exc).__name__}: {reason[:200]})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a farl checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {data.get('format_version')!r} from farl "
            f"{data.get('farl_version')}; this farl ({__version__}) reads format {FORMAT_VERSION}"
        )
    return data
