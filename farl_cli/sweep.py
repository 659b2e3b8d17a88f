"""Many runs on Ray: seeds x grid sweeps, hyperparameter tuning, and their summaries.

``farl sweep`` runs every (configuration, seed) as one ordinary farl run, each a Ray *task*
in its own run directory under ``sweeps/<name>/<configuration>/seed<k>/``. Ray core tasks,
not Ray Tune: a sweep is a fixed list of runs that needs no scheduler's decisions, and each
run already keeps its own checkpoints and resumes exactly (``farl_cli.runs``), so a second
record of the same trials (Tune's experiment state) would only have to be kept in step with
it. Running the same command again continues a sweep: finished runs are kept, interrupted
ones resume from their newest checkpoint.

``farl tune`` searches hyperparameters with Ray Tune: Optuna's sampler proposes
configurations and the ASHA scheduler stops the poor ones early. There Tune is the right
tool: the scheduler must see every trial's evaluations as they come, from whichever machine
runs it, and Optuna alone would need a database that every machine of a cluster can reach.

Without an address Ray starts inside this process on this machine's cores; with one it joins
that cluster (whose machines must see the sweep directory at the same path, as on a shared
file system).
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farl_cli.config import Preset, apply_override, load_preset, read_value, validate
from farl_cli.curves import Curves, bootstrap_ci, iqm, plot, source_commit
from farl_cli.errors import FarlError

SWEEPS_ROOT = Path("sweeps")
RAY_HINT = 'farl sweep, farl tune and env.vector: ray need Ray; install: pip install "farl[ray]"'


class SweepError(FarlError):
    """A sweep that cannot start or continue as asked."""


def import_ray() -> Any:
    """The ``ray`` module, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise FarlError(RAY_HINT) from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address``, or start Ray here; False if already connected."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR"}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    term = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(log_to_driver=False, configure_logging=True, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = address or "this machine"
        raise SweepError(f"cannot start or join Ray at {where}: {first}") from None
    if callable(term):  # Ray installs its own, which ends the process without cleaning up
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, term)
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line and in seconds, an address where nothing listens."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise SweepError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SweepError(f"--address {address}: no Ray cluster answers there ({reason})") from None


# ---------------------------------------------------------------------- the grid


def split_values(raw: str) -> list[str]:
    """``a,b,[1,2]`` -> ``["a", "b", "[1,2]"]``: commas inside brackets or quotes stay."""
    values, depth, quote, current = [], 0, "", ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``--grid section.key=v1,v2`` options as ``{key: [values]}``, in the order given."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or "." not in key:
            raise SweepError(f"--grid {item!r}: expected section.key=value1,value2,...")
        values = split_values(raw)
        if not any(values) or any(v == "" for v in values):
            raise SweepError(f"--grid {item!r}: an empty value; give values such as {key}=1,2")
        if key in grid:
            raise SweepError(f"--grid {key} is given twice; give all its values in one --grid")
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {item!r}: a value is given twice")
        grid[key] = values
    return grid


def config_label(overrides: tuple[str, ...]) -> str:
    """A configuration's name, also its directory: ``agent.lr=0.001,env.bins=21``."""
    if not overrides:
        return "base"
    return ",".join(overrides).replace("/", "_")


# ---------------------------------------------------------------------- planning a sweep


@dataclass(frozen=True, eq=False)  # identity: the driver keys its bookkeeping by trial
class Trial:
    """One run of a sweep: a configuration and a seed, in its own directory."""

    config: str
    seed: int
    run_dir: Path
    preset: dict[str, Any]  # the resolved preset, so workers need no preset file

    @property
    def total_steps(self) -> int:
        """The run's budget."""
        return int(self.preset["train"]["total_steps"])

    def state(self) -> str:
        """``done``, ``partial`` (a checkpoint to resume) or ``new``, read from disk."""
        from farl_cli.runs import newest_checkpoint, read_index

        if read_index(self.run_dir).get("last.pt", -1) >= self.total_steps:
            return "done"
        return "partial" if newest_checkpoint(self.run_dir) is not None else "new"


@dataclass
class Sweep:
    """Every trial of a sweep, and where it writes."""

    name: str
    directory: Path
    base: Preset
    configs: list[tuple[str, tuple[str, ...]]]
    trials: list[Trial]


def plan_sweep(
    preset_arg: str,
    seeds: int,
    grid_items: list[str],
    sets: list[str],
    name: str | None = None,
    root: Path = SWEEPS_ROOT,
    first_seed: int = 0,
    name_flag: str = "--name",
) -> Sweep:
    """Validate every configuration, then claim (or re-open) ``root/<name>``.

    ``name_flag`` is the option that names the sweep in the caller's command, for its errors.
    """
    if seeds < 1:
        raise SweepError(f"--seeds {seeds}: give at least one seed")
    base = load_preset(preset_arg, sets)
    grid = parse_grid(grid_items)
    combos = list(itertools.product(*[[f"{k}={v}" for v in vals] for k, vals in grid.items()]))
    name = name or base.name
    if not name or "/" in name or name in (".", ".."):
        raise SweepError(f"{name_flag} {name!r}: give a plain name (it becomes a directory)")
    directory = root / name
    configs, trials = [], []
    for combo in combos:
        label = config_label(combo)
        configs.append((label, combo))
        data = load_preset(preset_arg, [*sets, *combo]).model_dump(mode="json")
        for seed in range(first_seed, first_seed + seeds):
            data["train"]["seed"] = seed
            run_dir = (directory / label / f"seed{seed}").absolute()
            trials.append(Trial(label, seed, run_dir, json.loads(json.dumps(data))))
    claim_sweep_dir(directory, sweep_record(base, grid, preset_arg, sets), name_flag)
    return Sweep(name, directory, base, configs, trials)


def sweep_record(
    base: Preset, grid: dict[str, list[str]], preset_arg: str, sets: list[str]
) -> dict[str, Any]:
    """What ``sweep.json`` holds: the resolved preset (its budget included), grid and command."""
    return {
        "preset": base.model_dump(mode="json"),
        "grid": grid,
        "command_preset": preset_arg,
        "sets": sets,
    }


def claim_sweep_dir(directory: Path, spec: dict[str, Any], name_flag: str = "--name") -> None:
    """Create ``directory`` with its ``sweep.json``, or re-open it if it holds this sweep."""
    record = directory / "sweep.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            existing = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
        wanted = _comparable(spec)
        held = _comparable(existing) if isinstance(existing, dict) else {}
        if not isinstance(existing, dict) or {k: held.get(k) for k in wanted} != wanted:
            raise SweepError(
                f"{directory} holds another sweep (its preset, --set or --grid differ); "
                f"give {name_flag} to start a new one"
            ) from None
        before, after = _budget(existing), _budget(spec)
        if before is None or after is None or after < before:
            raise SweepError(
                f"{directory} holds this sweep with a budget of {before} steps "
                f"(train.total_steps); give at least that many to continue it, or {name_flag} "
                "to start a new one"
            ) from None
        if after > before:  # a larger budget: its runs continue from where they ended
            _rewrite_record(record, spec)
        return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SweepError(f"cannot create the sweep directory {directory}: {reason}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_record_text(spec))


def _record_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2) + "\n"


def _rewrite_record(record: Path, spec: dict[str, Any]) -> None:
    tmp = record.with_name(f".{record.name}.tmp")
    try:
        tmp.write_text(_record_text(spec), encoding="utf-8")
        os.replace(tmp, record)  # atomic: a reader sees the old budget or the new one
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SweepError(f"cannot update {record}: {reason}") from None


def _budget(spec: dict[str, Any]) -> int | None:
    """The sweep's ``train.total_steps``, or None if its record lacks one."""
    with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
        return int(spec["preset"]["train"]["total_steps"])
    return None


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """The record as this farl reads it, to recognise a sweep begun by an earlier one.

    Its preset is read again, so that a key added since counts at its default, and its
    description (prose, which a preset file may reword) and budget are left out.
    """
    preset = spec.get("preset")
    if isinstance(preset, dict):
        with contextlib.suppress(ValueError, TypeError):  # pydantic's errors are ValueErrors
            preset = Preset.model_validate(preset).model_dump(mode="json")
        preset = {k: v for k, v in preset.items() if k != "description"}
        spec = {**spec, "preset": preset}
    return _without_budget(spec)  # which copies it before changing it


def _without_budget(spec: dict[str, Any]) -> dict[str, Any]:
    """The sweep's record with its budget left out, to recognise it under a larger one."""
    spec = json.loads(json.dumps(spec))  # a deep copy
    with contextlib.suppress(AttributeError, KeyError, TypeError):
        del spec["preset"]["train"]["total_steps"]
    if isinstance(spec.get("sets"), list):
        spec["sets"] = [s for s in spec["sets"] if not str(s).startswith("train.total_steps=")]
    return spec


# ---------------------------------------------------------------------- running it


def run_trial(preset_data: dict[str, Any], run_dir: str, threads: int, tracker: Any) -> dict:
    """One trial, in a Ray worker: resume its newest checkpoint, or start it afresh."""
    import torch

    from farl_cli.runs import newest_checkpoint
    from farl_cli.training import resume, train

    torch.set_num_threads(threads)
    path = Path(run_dir)

    def report(step: int, _sps: float, row: dict[str, Any]) -> None:
        tracker.update.remote(run_dir, step, row.get("eval_return"))

    newest = newest_checkpoint(path)
    if newest is not None:  # interrupted, or done under a smaller budget: continue in place
        budget = f"train.total_steps={preset_data['train']['total_steps']}"
        result = resume(newest, overrides=[budget], on_progress=report)
    else:
        if path.exists():  # started, but stopped before its first checkpoint: start again
            shutil.rmtree(path)
        tracker.update.remote(run_dir, 0, None)
        result = train(Preset.model_validate(preset_data), path, on_progress=report)
    return {"status": result.status, "step": result.global_step}


class TrialTracker:
    """A Ray actor the trials report to, so the driver can show what is running."""

    def __init__(self) -> None:
        self.progress: dict[str, tuple[int, float | None]] = {}

    def update(self, run_dir: str, step: int, eval_return: float | None) -> None:
        """A trial's newest step and evaluation."""
        last = self.progress.get(run_dir, (0, None))[1]
        self.progress[run_dir] = (step, last if eval_return is None else eval_return)

    def snapshot(self) -> dict[str, tuple[int, float | None]]:
        """Every trial heard from so far."""
        return dict(self.progress)


@dataclass
class SweepStatus:
    """Where a sweep stands, for the live display."""

    total: int
    done: list[Trial] = field(default_factory=list)
    failed: list[tuple[Trial, str]] = field(default_factory=list)
    running: dict[Trial, tuple[int, float | None]] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        """Trials not yet started."""
        return self.total - len(self.done) - len(self.failed) - len(self.running)


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray started (or joined) for the duration; shut down after if this call started it.

    ``num_cpus`` caps a Ray started here (default: every core), to leave cores to others."""
    ray = import_ray()
    started = init_ray(address, num_cpus)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    sweep: Sweep,
    *,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    num_cpus: int | None = None,
    on_status: Callable[[SweepStatus], None] | None = None,
) -> SweepStatus:
    """Run every trial not yet done; Ctrl-C stops the running ones at a checkpoint."""
    if not cpus_per_trial > 0:
        raise SweepError(f"--cpus-per-trial {cpus_per_trial}: give a number of CPUs above 0")
    local = num_cpus or os.cpu_count() or 1
    if address is None and cpus_per_trial > local:  # no trial could ever start
        raise SweepError(
            f"--cpus-per-trial {cpus_per_trial} is more than the {local} CPU(s) Ray may use "
            "on this machine"
        )
    status = SweepStatus(total=len(sweep.trials))
    todo = []
    for trial in sweep.trials:
        (status.done if trial.state() == "done" else todo).append(trial)
    if not todo:
        return status
    threads = max(1, int(cpus_per_trial))
    with ray_session(address, num_cpus) as ray:
        tracker = ray.remote(num_cpus=0)(TrialTracker).remote()
        task = ray.remote(num_cpus=cpus_per_trial, max_retries=0)(run_trial)
        refs = {
            task.remote(t.preset, str(t.run_dir), threads, tracker): t for t in todo
        }  # Ray queues what the cluster's CPUs cannot run yet
        by_dir = {str(t.run_dir): t for t in todo}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in ready:
                    trial = refs.pop(ref)
                    status.running.pop(trial, None)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # a trial's error must not end the others
                        status.failed.append((trial, _task_error(exc)))
                        continue
                    if result["status"] == "finished":
                        status.done.append(trial)
                    else:
                        status.failed.append((trial, f"stopped at step {result['step']:,}"))
                live = ray.get(tracker.snapshot.remote())
                status.running = {
                    by_dir[d]: p for d, p in live.items() if by_dir[d] in refs.values()
                }
                if on_status is not None:
                    on_status(status)
        except KeyboardInterrupt:
            stop_trials(ray, list(refs))
            raise
    return status


def stop_trials(ray: Any, refs: list[Any], grace: float = 60.0) -> None:
    """Ask running trials to stop (a SIGINT each: they save a checkpoint) and wait a while."""
    for ref in refs:
        ray.cancel(ref)  # a queued task is dropped; a running one gets KeyboardInterrupt
    deadline = time.monotonic() + grace
    remaining = list(refs)
    while remaining and time.monotonic() < deadline:
        try:
            _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            break


def _task_error(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip()
    if isinstance(cause, FarlError) and text:
        return text.splitlines()[0]
    last = text.splitlines()[-1] if text else type(cause).__name__
    return f"{type(cause).__name__}: {last}" if not last.startswith(type(cause).__name__) else last


# ---------------------------------------------------------------------- summaries


def config_curves(sweep: Sweep, label: str, column: str = "eval_return") -> Curves:
    """Every seed's curve of one configuration."""
    runs = [
        (t.seed, t.run_dir / "metrics.csv")
        for t in sweep.trials
        if t.config == label and (t.run_dir / "metrics.csv").is_file()
    ]
    return Curves.from_runs(runs, column)


def summary_row(label: str, curves: Curves) -> dict[str, Any]:
    """One configuration: seeds, final and best mean, IQM of finals [95% CI], solved."""
    final, best = curves.final(), curves.best()
    low, high = bootstrap_ci(final)
    step = min(curves.steps[np.flatnonzero(np.isfinite(row))[-1]] for row in curves.returns)
    row: dict[str, Any] = {
        "config": label,
        "seeds": len(curves.seeds),
        "step": step,
        "final_mean": float(final.mean()),
        "best_mean": float(best.mean()),
        "final_iqm": float(iqm(final)),
        "final_iqm_low": low,
        "final_iqm_high": high,
        "solved_fraction": "",
    }
    if curves.has_success:
        rows = curves.summary()
        row["solved_fraction"] = next(
            (r["solved_fraction"] for r in reversed(rows) if r["step"] == step), ""
        )
    return row


def write_summary(sweep: Sweep, command: str = "") -> tuple[list[dict[str, Any]], Path, Path]:
    """``summary.csv`` (a row per configuration, with the code's commit and ``command``) and
    ``curves.png`` in the sweep directory."""
    groups = [(label, config_curves(sweep, label)) for label, _ in sweep.configs]
    groups = [(label, c) for label, c in groups if c.seeds and c.steps]
    stamp = {"commit": source_commit(), "command": command}
    rows = [{**summary_row(label, curves), **stamp} for label, curves in groups]
    table = sweep.directory / "summary.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["config"])
        writer.writeheader()
        writer.writerows(rows)
    png = sweep.directory / "curves.png"
    if groups:
        plot(groups, png, f"{sweep.name}: {sweep.base.name} on {sweep.base.env.name}")
    return rows, table, png


# ---------------------------------------------------------------------- tuning

SPACE_KINDS = ("uniform", "loguniform", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range: ``loguniform:1e-4,1e-2``, ``int:1,8``, ``choice:a,b``."""

    key: str
    kind: str
    values: tuple[Any, ...]

    def sampler(self) -> Any:
        """The Ray Tune search domain."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.kind == "int":
            return tune.randint(int(low), int(high) + 1)  # both ends included
        return tune.loguniform(low, high) if self.kind == "loguniform" else tune.uniform(low, high)


def parse_dimension(key: str, spec: str, origin: str) -> Dimension:
    """``KIND:values`` for ``key``; errors name ``origin`` (the option or file)."""
    kind, sep, raw = str(spec).partition(":")
    kind = kind.strip()
    if not sep or kind not in SPACE_KINDS:
        raise SweepError(
            f"{origin}: {key}: expected KIND:values with KIND one of {', '.join(SPACE_KINDS)} "
            "(e.g. loguniform:1e-4,1e-2 or choice:64,128)"
        )
    values = split_values(raw)
    if any(v == "" for v in values):
        raise SweepError(f"{origin}: {key}: an empty value in {spec!r}")
    parsed = [read_value(v) for v in values]
    if kind == "choice":
        if len(parsed) < 2:
            raise SweepError(f"{origin}: {key}: choice needs two values or more")
        return Dimension(key, kind, tuple(parsed))
    numbers = [p for p in parsed if isinstance(p, int | float) and not isinstance(p, bool)]
    if len(parsed) != 2 or len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise SweepError(f"{origin}: {key}: {kind} needs LOW,HIGH numbers with LOW < HIGH")
    if kind == "loguniform" and numbers[0] <= 0:
        raise SweepError(f"{origin}: {key}: loguniform needs LOW > 0")
    if kind == "int" and not all(isinstance(n, int) for n in numbers):
        raise SweepError(f"{origin}: {key}: int needs whole numbers")
    return Dimension(key, kind, (numbers[0], numbers[1]))


def parse_space(items: list[str], space_file: Path | None) -> list[Dimension]:
    """Search space from ``--space key=KIND:values`` options and a YAML file of the same."""
    from farl_cli.config import read_yaml

    dims: dict[str, Dimension] = {}
    if space_file is not None:
        data = read_yaml(space_file)
        for key, spec in data.items():
            dims[str(key)] = parse_dimension(str(key), spec, str(space_file))
    for item in items:
        key, sep, spec = item.partition("=")
        if not sep or "." not in key:
            raise SweepError(f"--space {item!r}: expected section.key=KIND:values")
        dims[key.strip()] = parse_dimension(key.strip(), spec, "--space")
    if not dims:
        raise SweepError("farl tune needs a search space: --space section.key=KIND:values")
    return list(dims.values())


def apply_params(base: Preset, params: dict[str, Any], origin: str) -> Preset:
    """``base`` with sampled hyperparameters set, validated."""
    data = base.model_dump(mode="json")
    items = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    for item in items:
        apply_override(data, item)
    return validate(data, source=origin, overrides=items)


@dataclass
class TuneResult:
    """What a search tried and what it recommends."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_preset: Path | None
    table: Path


def tune_trial(config: dict[str, Any], base: dict[str, Any], directory: str) -> None:
    """One Ray Tune trial: a farl run that reports each evaluation to the scheduler."""
    import torch
    from ray import tune

    from farl_cli.training import train

    torch.set_num_threads(max(1, int(config.pop("_threads", 1))))
    trial_id = tune.get_context().get_trial_id()
    preset = apply_params(Preset.model_validate(base), config, f"trial {trial_id}")

    def report(step: int, _sps: float, row: dict[str, Any]) -> None:
        if "eval_return" in row:
            tune.report({"eval_return": row["eval_return"], "step": step})

    train(preset, Path(directory) / "trials" / trial_id, on_progress=report)


def run_tune(
    preset_arg: str,
    dims: list[Dimension],
    trials: int,
    sets: list[str],
    *,
    name: str | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    num_cpus: int | None = None,
    seed: int = 0,
    root: Path = SWEEPS_ROOT,
) -> TuneResult:
    """Optuna-sampled trials, ASHA-stopped, on Ray; the best as a preset file."""
    if trials < 1:
        raise SweepError(f"--trials {trials}: give at least one trial")
    base = load_preset(preset_arg, sets)
    for dim in dims:  # every key must exist and accept every value of its range
        for value in dim.values:
            apply_params(base, {dim.key: value}, f"--space {dim.key}")
    name = name or f"{base.name}-tune"
    directory = (root / name).absolute()
    if directory.exists():
        raise SweepError(f"{directory} already exists; give --name to start another search")
    directory.mkdir(parents=True)
    import_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the older reporter honours verbose=0
    try:
        import optuna
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise FarlError(RAY_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    evals = max(1, base.train.total_steps // base.train.eval_every)
    with ray_session(address, num_cpus):
        trainable = tune.with_resources(
            tune.with_parameters(
                tune_trial, base=base.model_dump(mode="json"), directory=str(directory)
            ),
            {"cpu": cpus_per_trial},
        )
        space = {dim.key: dim.sampler() for dim in dims}
        space["_threads"] = max(1, int(cpus_per_trial))
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="eval_return",
                mode="max",
                num_samples=trials,
                search_alg=OptunaSearch(seed=seed),
                scheduler=ASHAScheduler(max_t=evals, grace_period=max(1, evals // 3)),
            ),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(directory), verbose=0, log_to_file=False
            ),
        )
        grid = tuner.fit()
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        params = {d.key: (result.config or {}).get(d.key) for d in dims}
        rows.append(
            {
                **params,
                "evaluations": int(metrics.get("training_iteration", 0) or 0),
                "step": metrics.get("step", ""),
                "eval_return": metrics.get("eval_return", ""),
                "stopped_early": int(metrics.get("training_iteration", 0) or 0) < evals,
                "error": _task_error(result.error) if result.error else "",
            }
        )
    table = directory / "trials.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["error"])
        writer.writeheader()
        writer.writerows(rows)
    finished = [r for r in rows if not r["error"] and r["eval_return"] != ""]
    complete = [r for r in finished if not r["stopped_early"]] or finished
    best = max(complete, key=lambda r: r["eval_return"]) if complete else None
    best_path = None
    if best is not None:
        params = {d.key: best[d.key] for d in dims}
        tuned = apply_params(base, params, "the best trial")
        tuned.name = f"{base.name}-tuned"
        chosen = ", ".join(f"{k}={v}" for k, v in params.items())
        tuned.description = f"{base.name} tuned by farl tune ({len(rows)} trials): {chosen}"
        best_path = directory / "best.yaml"
        best_path.write_text(tuned.to_yaml(), encoding="utf-8")
    return TuneResult(rows, best, best_path, table)
