"""A run's life: its directory, resolved preset, metrics file, checkpoints, resume and forks.

A run directory is created atomically (``mkdir`` fails if it exists), so two runs never
share one, even when started in the same second. It holds ``preset.yaml``, ``run.json``
(where it came from), ``metrics.csv`` and ``checkpoints/``. Resuming from the run's newest
checkpoint continues it in place; resuming from an older one forks a new run directory that
records its parent and never touches the original's files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from farl_cli.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from farl_cli.config import (
    Preset,
    apply_override,
    load_preset,
    resolve_preset_path,
    validate,
)
from farl_cli.errors import FarlError

RUNS_ROOT = Path("runs")
INDEX = "index.json"  # checkpoints/index.json: {file name: global step}
# What a resumed run may change: nothing that shapes the environment, the networks, the
# buffers or the random streams. Anything else (budget, cadence, learning rates,
# coefficients) is allowed and recorded in run.json.
FIXED_ON_RESUME = (
    "env.",
    "agent.algo",
    "agent.hidden_sizes",
    "agent.activation",
    "agent.critic",
    "agent.pair_rank",
    "agent.critic_layer_norm",
    "agent.sub_q_degree",
    "agent.policy_degree",
    "agent.policy_ordinal",
    "agent.actor",
    "agent.rollout_steps",
    "agent.buffer_size",
    "agent.normalize_observations",
    "train.seed",
)


class RunError(FarlError):
    """A run directory or resume request that cannot be honoured."""


def machine() -> dict[str, str]:
    """What a run's floating-point results depend on beyond its seed: CPU, torch, simulators.

    A seeded run repeats itself to the last digit on one machine, but CPUs whose kernels
    round matrix products differently (AVX2 against AVX-512, say) drift apart after the
    first gradient steps, so ``run.json`` records where each sitting ran. Two CPUs can share
    a name and a capability and still round differently, so the family and model numbers
    are recorded too; and the versions of the libraries that step the environments.
    """
    numbers: dict[str, str] = {}
    with contextlib.suppress(OSError):  # the first processor's block is enough
        first = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n", 1)[0]
        for line in first.splitlines():
            key, _, value = line.partition(":")
            numbers[key.strip()] = value.strip()
    record = {
        "cpu": numbers.get("model name") or platform.processor() or platform.machine(),
        "cpu_model": f"family {numbers.get('cpu family', '?')} model {numbers.get('model', '?')}",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
    for package in ("numpy", "gymnasium", "mujoco"):
        try:
            record[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            record[package] = "absent"
    return record


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def run_name(preset: Preset) -> str:
    """``<preset>`` or, when the environment was overridden, ``<preset>@<environment>``."""
    from farl_cli.config import preset_names, presets_dir

    name = preset.name
    if name in preset_names():
        bundled = load_preset(str(presets_dir() / f"{name}.yaml"))
        if bundled.env.name != preset.env.name:
            name = f"{name}@{preset.env.name}"
    return name.replace("/", "_").replace(":", "_")


def make_run_dir(base: Path) -> Path:
    """Create ``base`` (or ``base-2``, ``base-3``... if taken) atomically and return it."""
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"cannot create the run directory {candidate}: {_reason(exc)}") from None
        return candidate
    raise RunError(f"{base}: a thousand runs already use this name; choose another --run-dir")


def claim_run_dir(path: Path) -> Path:
    """Use an explicit ``--run-dir``: created if new, refused if it holds anything."""
    if path.is_dir() and any(path.iterdir()):
        raise RunError(already_a_run(path))
    if path.exists() and not path.is_dir():
        raise RunError(f"--run-dir {path}: a file is in the way, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the run directory {path}: {_reason(exc)}") from None
    if not os.access(path, os.W_OK):
        raise RunError(f"cannot write to the run directory {path}: permission denied")
    return path


def release_run_dir(path: Path) -> None:
    """Give back a run directory that nothing was written to (a run that could not start)."""
    with contextlib.suppress(OSError):
        path.rmdir()  # only succeeds when empty


def already_a_run(path: Path) -> str:
    """What to say about a directory that holds a run: the exact command that continues it."""
    newest = newest_checkpoint(path)
    if newest is None:
        return (
            f"--run-dir {path} already holds a run with no checkpoint to resume; "
            f"remove it (rm -r {path}) or choose another --run-dir"
        )
    return (
        f"--run-dir {path} already holds a run; continue it with: farl train --resume {newest} "
        "(or choose another --run-dir)"
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# ---------------------------------------------------------------------- checkpoints


def read_index(run_dir: Path) -> dict[str, int]:
    """``{checkpoint file name: global step}`` of a run's checkpoints that still exist."""
    ckpt_dir = run_dir / "checkpoints"
    index: dict[str, int] = {}
    try:
        raw = json.loads((ckpt_dir / INDEX).read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            index = {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}
    except (OSError, ValueError):
        pass
    # step-N.pt name their step even if the index missed them (a crash between two writes)
    for path in ckpt_dir.glob("step-*.pt"):
        step = path.stem.removeprefix("step-")
        if step.isdigit():
            index.setdefault(path.name, int(step))
    return {name: step for name, step in index.items() if (ckpt_dir / name).is_file()}


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint with the most steps behind it (``last.pt`` on a tie)."""
    index = read_index(run_dir)
    if not index:
        return None
    name = max(index, key=lambda n: (index[n], n == "last.pt"))
    return run_dir / "checkpoints" / name


@dataclass
class CheckpointStore:
    """A run's checkpoints: atomic writes, an index of their steps, ``last.pt`` kept current."""

    run_dir: Path
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = self.run_dir / "checkpoints"
        self.index = read_index(self.run_dir)
        for stray in self.dir.glob(".*.tmp"):  # left by a crash mid-write
            stray.unlink(missing_ok=True)

    def save(self, name: str, payload: dict[str, Any], step: int) -> Path:
        """Write one checkpoint; a failure is one line, and the previous files stay intact."""
        path = self.dir / name
        try:
            save_checkpoint(path, payload)
            self.index[name] = step
            if name.startswith("step-"):
                self._link_last(path, step)
            self._write_index()
        except OSError as exc:
            good = newest_checkpoint(self.run_dir)
            kept = f"; the last good checkpoint is {good}" if good else ""
            raise RunError(f"could not write the checkpoint {path}: {_reason(exc)}{kept}") from None
        return path

    def _link_last(self, path: Path, step: int) -> None:
        # last.pt is the newest checkpoint at every moment, not only after a clean stop
        tmp = self.dir / ".last.pt.link.tmp"
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, self.dir / "last.pt")
        self.index["last.pt"] = step

    def _write_index(self) -> None:
        tmp = self.dir / f".{INDEX}.tmp"
        tmp.write_text(json.dumps(self.index, indent=0, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.dir / INDEX)


# ---------------------------------------------------------------------- metrics


def metrics_rows_up_to(metrics: Path, step: int) -> tuple[list[str], list[dict[str, str]]]:
    """Header and whole rows of a metrics file whose step is at most ``step``.

    A last line without its newline was cut by a crash mid-write: it is dropped.
    """
    try:
        text = metrics.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    reader = csv.DictReader(lines)
    rows = [
        row
        for row in reader
        if None not in row.values() and (s := _step(row)) is not None and s <= step
    ]
    return list(reader.fieldnames or []), rows


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


def write_metrics(metrics: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """Replace a metrics file atomically."""
    tmp = metrics.with_name(f".{metrics.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, metrics)


# ---------------------------------------------------------------------- starting a run


@dataclass
class RunPlan:
    """What ``farl train`` is about to do: a preset, a directory, and maybe a checkpoint."""

    preset: Preset
    run_dir: Path
    resume: dict[str, Any] | None = None
    parent: Path | None = None  # the checkpoint a fork started from
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know before it runs

    @property
    def start_step(self) -> int:
        """The step the run starts from."""
        return int(self.resume["counters"]["global_step"]) if self.resume else 0


def plan_new(preset_arg: str, sets: list[str], run_dir: Path | None) -> RunPlan:
    """A fresh run of a preset, in a directory of its own."""
    preset = load_preset(preset_arg, sets)
    if run_dir is not None:
        directory = claim_run_dir(run_dir)
    else:
        base = RUNS_ROOT / run_name(preset) / f"{_stamp()}-seed{preset.train.seed}"
        directory = make_run_dir(base)
    return RunPlan(preset, directory, overrides=sets)


def plan_resume(
    checkpoint: Path, preset_arg: str | None, sets: list[str], run_dir: Path | None
) -> RunPlan:
    """Continue the run that wrote ``checkpoint``: in place when it is that run's newest
    checkpoint, else (or with ``--run-dir``) as a fork in a new directory."""
    from farl_cli.training import check_resume_state

    data = load_checkpoint(checkpoint)
    saved = data.get("preset")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{checkpoint}: incomplete farl checkpoint (no preset)")
    base = validate(dict(saved), source=f"{checkpoint} (its preset)")
    if preset_arg is not None:
        _check_same_preset(checkpoint, base, preset_arg)
    merged = base.model_dump(mode="json")
    for item in sets:
        apply_override(merged, item)
    preset = validate(merged, source=f"{checkpoint} (its preset)", overrides=sets)
    _check_fixed_keys(checkpoint, base, preset)
    check_resume_state(checkpoint, data)
    step = int(data["counters"]["global_step"])
    notes = []
    buffer = data.get("agent", {}).get("buffer") if isinstance(data.get("agent"), dict) else None
    if isinstance(buffer, dict) and not buffer.get("has_data", True):
        starts = getattr(preset.agent, "learning_starts", 0)
        notes.append(
            f"{checkpoint} holds no replay buffer (saved without --save-buffer): the resumed "
            f"run collects {starts:,} uniform steps again before it learns"
        )

    in_run = checkpoint.resolve().parent.name == "checkpoints"
    origin = checkpoint.resolve().parent.parent  # the run that wrote it, when in_run
    newest = newest_checkpoint(origin) if in_run else None
    in_place = (
        run_dir is None
        and newest is not None
        and read_index(origin).get(newest.name) == step
        and (origin / "metrics.csv").exists()
    )
    if in_place:
        plan = RunPlan(preset, origin, data, overrides=sets, notes=notes)
        header, rows = metrics_rows_up_to(origin / "metrics.csv", step)
        if header:  # rows logged after the checkpoint are logged again as the run redoes them
            write_metrics(origin / "metrics.csv", header, rows)
        return plan
    if run_dir is not None:
        directory = claim_run_dir(run_dir)
    else:  # beside the original run, or under runs/ for a checkpoint kept elsewhere
        parent = origin.parent if in_run else RUNS_ROOT / run_name(preset)
        directory = make_run_dir(parent / f"{_stamp()}-seed{preset.train.seed}-from-{step}")
    header, rows = metrics_rows_up_to(origin / "metrics.csv", step) if in_run else ([], [])
    if header:
        write_metrics(directory / "metrics.csv", header, rows)
    return RunPlan(preset, directory, data, parent=checkpoint, overrides=sets, notes=notes)


def _check_same_preset(checkpoint: Path, saved: Preset, preset_arg: str) -> None:
    path = resolve_preset_path(preset_arg)
    name = path.stem if path is not None else preset_arg
    if name != saved.name:
        raise RunError(
            f"--preset {preset_arg} contradicts {checkpoint}, a checkpoint of {saved.name!r}; "
            "drop --preset to resume it, or start a new run without --resume"
        )


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _fixed_on_resume(key: str) -> bool:
    """Whether a flat setting is in :data:`FIXED_ON_RESUME`: named, or in a section ending
    with a dot (``agent.critic`` is fixed, ``agent.critic_max_grad_norm`` is not)."""
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in FIXED_ON_RESUME)


def _check_fixed_keys(checkpoint: Path, saved: Preset, wanted: Preset) -> None:
    old, new = _flat(saved.model_dump(mode="json")), _flat(wanted.model_dump(mode="json"))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key) and _fixed_on_resume(key):
            raise RunError(
                f"{key}={json.dumps(new.get(key))} contradicts {checkpoint}, which has "
                f"{key}={json.dumps(old.get(key))}; a resumed run keeps its environment, "
                "networks, buffers and seed (start a new run to change them)"
            )


def open_run(plan: RunPlan) -> CheckpointStore:
    """Write the resolved preset and ``run.json``; return the run's checkpoint store."""
    try:
        (plan.run_dir / "preset.yaml").write_text(plan.preset.to_yaml(), encoding="utf-8")
        record_path = plan.run_dir / "run.json"
        here = machine()
        record: dict[str, Any] = {"created": _stamp(), "resumes": []}
        if record_path.exists():  # a run from before machines were recorded stays without one
            with contextlib.suppress(ValueError):
                record = {**record, **json.loads(record_path.read_text(encoding="utf-8"))}
        else:
            record["machine"] = here
        if plan.parent is not None:
            record["parent"] = {"checkpoint": str(plan.parent), "step": plan.start_step}
        if plan.resume is not None:
            record["resumes"].append(
                {
                    "at": _stamp(),
                    "step": plan.start_step,
                    "overrides": plan.overrides,
                    "machine": here,
                }
            )
        elif plan.overrides:
            record["overrides"] = plan.overrides
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (plan.run_dir / "checkpoints").mkdir(exist_ok=True)
    except OSError as exc:
        where = plan.run_dir
        raise RunError(f"cannot write to the run directory {where}: {_reason(exc)}") from None
    return CheckpointStore(plan.run_dir)
