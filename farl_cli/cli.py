"""The ``farl`` command line. Thin: parse, call the library, print with Rich."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farl_cli import __version__
from farl_cli.errors import FarlError, interrupted, stop_cleanly

app = typer.Typer(
    name="farl",
    help="Deep reinforcement learning in very large action spaces, by factoring them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

CheckpointArg = Annotated[Path, typer.Argument(help="A checkpoint written by farl train.")]
DeviceOpt = Annotated[
    str | None,
    typer.Option(help="auto (CUDA when there is one), cpu or cuda.", show_default="auto"),
]
DeterministicOpt = Annotated[
    bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")
]
GreedyOpt = Annotated[
    str,
    typer.Option(
        help="The greedy action: the policy's mode, or each head's bin nearest its mean"
        " (mean; independent heads over evenly spaced bins, such as MuJoCo torques)."
    ),
]


def user_errors(fn: F) -> F:
    """A FarlError becomes its message on stderr and exit code 2; Ctrl-C exits 130 quietly."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FarlError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                # soft_wrap: one line per message, so commands in it can be copied whole
                err_console.print(
                    f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True
                )
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            # Ctrl-C or SIGTERM while a C extension was importing (MuJoCo, at start-up)
            # reaches us as that import's error, caused by the KeyboardInterrupt
            if not interrupted(exc):
                raise
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"farl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Deep reinforcement learning in very large action spaces, by factoring them."""


presets_app = typer.Typer(
    help="The bundled experiments: a table, or one preset's YAML to copy and edit.",
    no_args_is_help=False,
)
app.add_typer(presets_app, name="presets")


@presets_app.callback(invoke_without_command=True)
def presets_callback(ctx: typer.Context) -> None:
    """List the bundled presets (``farl presets show NAME`` prints one)."""
    if ctx.invoked_subcommand is None:
        presets_command()


@presets_app.command("show")
@user_errors
def presets_show_command(
    name: Annotated[str, typer.Argument(help="A bundled preset's name.")],
) -> None:
    """Print a bundled preset's YAML, comments included: save it, edit it, train with it."""
    from farl_cli.config import PresetError, presets_dir, unknown_preset_message

    path = presets_dir() / f"{name}.yaml"
    if "/" in name or not path.is_file():
        raise PresetError(unknown_preset_message(name))
    print(path.read_text(encoding="utf-8"), end="")


@user_errors
def presets_command() -> None:
    """List the bundled presets."""
    from farl_cli.config import load_preset, preset_names

    wide = console.width >= 120
    table = Table(title="farl presets", title_justify="left")
    columns = ["preset", "algo", "factorization", "bins", "steps"]
    for column in [*columns, "description"] if wide else columns:
        table.add_column(column, no_wrap=column != "description", overflow="fold")
    for name in preset_names():
        p = load_preset(name)
        row = [
            name,
            p.agent.algo,
            p.env.factorization or "(natural)",
            # what the preset declares: environments without continuous actions set no bins
            str(p.env.bins) if "bins" in p.env.model_fields_set else "-",
            f"{p.train.total_steps:,}",
        ]
        table.add_row(*row, p.description) if wide else table.add_row(*row)
    console.print(table)


@app.command("inspect-actions")
@user_errors
def inspect_actions_command(
    target: Annotated[str, typer.Argument(help="A preset name, a preset file or an env name.")],
    bins: Annotated[int | None, typer.Option(help="Bins per continuous dimension.")] = None,
    factorization: Annotated[
        str | None, typer.Option(help="independent or autoregressive.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Show how an action space factors: dimensions, sizes, joint actions, entropies."""
    from pydantic import ValidationError

    from farl_cli.config import EnvConfig, FSACConfig, PresetError, format_errors, load_preset
    from farl_cli.config import resolve_preset_path as preset_path
    from farl_cli.envs import UnknownEnvironmentError, make_factored_env
    from farl_cli.spaces import describe

    beta = None
    overrides = {
        k: v for k, v in (("bins", bins), ("factorization", factorization)) if v is not None
    }
    if preset_path(target) is not None:
        preset = load_preset(target, [f"env.{k}={v}" for k, v in overrides.items()])
        env_cfg = preset.env
        if isinstance(preset.agent, FSACConfig):
            beta = preset.agent.entropy_target_beta
    else:
        try:
            env_cfg = EnvConfig(name=target, **overrides)
        except ValidationError as exc:
            raise PresetError(
                format_errors(exc, f"{target} (--bins, --factorization)", {})
            ) from None
    try:
        env = make_factored_env(env_cfg)
    except UnknownEnvironmentError as exc:
        raise FarlError(f"{exc}; nor is {target!r} a preset (see farl presets)") from None
    try:
        info = describe(env.factored_space, beta)
    finally:
        env.close()
    info["target"] = target
    info["env"] = env_cfg.name
    if as_json:
        console.print_json(json.dumps(info))
    else:
        _print_description(info)


@app.command("train")
@user_errors
def train_command(
    preset: Annotated[
        str | None, typer.Option("--preset", "-p", help="Preset name or YAML file.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a preset key: section.key=value (repeatable)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (train.seed).")] = None,
    total_steps: Annotated[
        int | None, typer.Option(help="Environment steps in all (train.total_steps).")
    ] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the run.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run that wrote this checkpoint.")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="PyTorch threads.")] = 1,
    quiet: Annotated[bool, typer.Option(help="No live display.")] = False,
    save_buffer: Annotated[
        bool, typer.Option("--save-buffer", help="FSAC: keep the replay buffer in checkpoints.")
    ] = False,
    device: DeviceOpt = None,
    compile_update: Annotated[
        bool,
        typer.Option("--compile", help="torch.compile the update (train.compile; for GPUs)."),
    ] = False,
) -> None:
    """Train an agent from a preset; Ctrl-C saves a checkpoint you can resume from."""
    import torch

    from farl_cli.config import PresetError
    from farl_cli.progress import TrainDisplay
    from farl_cli.runs import plan_new, plan_resume
    from farl_cli.training import run

    torch.set_num_threads(threads)
    sets = list(overrides or [])
    if seed is not None:
        sets.append(f"train.seed={seed}")
    if total_steps is not None:
        sets.append(f"train.total_steps={total_steps}")
    if save_buffer:
        sets.append("train.save_buffer=true")
    if device is not None:
        sets.append(f"train.device={device}")
    if compile_update:
        sets.append("train.compile=true")
    if resume is not None:
        plan = plan_resume(resume, preset, sets, run_dir)
    elif preset is None:
        raise PresetError("--preset is required (or --resume CHECKPOINT); see farl presets")
    else:
        plan = plan_new(preset, sets, run_dir)
    resolved = plan.preset
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if plan.parent is not None:
        err_console.print(
            f"{plan.parent} is not its run's newest checkpoint: continuing in a new run "
            f"directory, {plan.run_dir}",
            highlight=False,
            soft_wrap=True,
        )
    algo, train_seed = resolved.agent.algo, resolved.train.seed
    title = f"{resolved.name} on {resolved.env.name} ({algo}, seed {train_seed})"
    live = console.is_terminal and not quiet
    display = (
        TrainDisplay(console, title, resolved.train.total_steps, plan.start_step) if live else None
    )
    with display or contextlib.nullcontext():
        result = run(plan, on_progress=display.update if display is not None else _log_row(quiet))
    _print_summary(result)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if result.status == "interrupted":
        note = ""
        if result.buffer_saved is False:
            note = (
                " (the replay buffer was not saved: the resumed run refills it before learning;"
                " add --save-buffer to keep it next time)"
            )
        err_console.print(
            f"Interrupted at step {result.global_step:,}; checkpoint saved.\n"
            f"Resume with: farl train --resume {result.last_checkpoint}{note}",
            highlight=False,
            soft_wrap=True,  # one line, whatever the width: it is meant to be copied
        )
        raise typer.Exit(130)


@app.command("plot")
@user_errors
def plot_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Runs, directories of runs or learning CSVs (one curve each)."),
    ],
    column: Annotated[str, typer.Option(help="The metrics.csv column to plot.")] = "eval_return",
    out: Annotated[Path, typer.Option(help="The PNG to write.")] = Path("curves.png"),
    title: Annotated[str, typer.Option(help="The figure's title.")] = "",
) -> None:
    """Learning curves: each source's IQM over its runs with a 95% bootstrap band; a table."""
    from farl_cli.curves import load_source, plot

    groups = [
        (source.stem if source.suffix == ".csv" else source.name, load_source(source, column))
        for source in sources
    ]
    ylabel = "deterministic evaluation return" if column == "eval_return" else column
    plot(groups, out, title, ylabel=ylabel)
    table = Table(
        title=f"{column} at the last step every run of a source reached", title_justify="left"
    )
    for name in ("source", "runs", "step", "mean", "IQM [95% CI]", "solved"):
        table.add_column(name, justify="left" if name == "source" else "right")
    for name, curves in groups:
        rows = curves.summary()
        last = ([r for r in rows if r["seeds"] == len(curves.seeds)] or rows)[-1]
        solved = f"{last['solved_fraction']:.0%}" if "solved_fraction" in last else "-"
        table.add_row(
            name, f"{last['seeds']}", f"{last['step']:,}", f"{last['mean']:.4g}",
            f"{last['iqm']:.4g} [{last['iqm_low']:.4g}, {last['iqm_high']:.4g}]", solved,
        )  # fmt: skip
    console.print(table)
    console.print(f"plot: {out}", highlight=False)


GridOpt = Annotated[
    list[str] | None,
    typer.Option("--grid", help="Values to sweep: section.key=v1,v2,... (repeatable)."),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="A Ray cluster to join (HOST:PORT); default: Ray on this machine."),
]
EverySetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a preset key in every run (repeatable)."),
]
CpusOpt = Annotated[float, typer.Option(help="CPUs each run takes (also its torch threads).")]
LocalCpusOpt = Annotated[
    int | None,
    typer.Option("--cpus", min=1, help="CPUs Ray may use on this machine (default: all)."),
]


@app.command("sweep")
@user_errors
def sweep_command(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name or YAML file.")],
    seeds: Annotated[int, typer.Option(help="Seeds per configuration (0 to N-1).")] = 3,
    grid: GridOpt = None,
    overrides: EverySetOpt = None,
    address: AddressOpt = None,
    cpus_per_trial: CpusOpt = 1.0,
    cpus: LocalCpusOpt = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep's name, its directory under sweeps/.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No live display.")] = False,
) -> None:
    """Every (configuration, seed) as one farl run on Ray; the same command continues it."""
    from farl_cli.progress import SweepDisplay
    from farl_cli.sweep import check_reachable, plan_sweep, run_sweep, write_summary

    stop_cleanly()  # Ctrl-C from here on stops the trials at a checkpoint
    if address is not None:  # before anything is written
        check_reachable(address)
    sweep = plan_sweep(preset, seeds, list(grid or []), list(overrides or []), name)
    n = len(sweep.trials)
    console.print(
        f"sweep {sweep.name}: {len(sweep.configs)} configuration(s) x {seeds} seed(s) = {n} "
        f"runs in {sweep.directory}",
        highlight=False,
        soft_wrap=True,
    )
    display = SweepDisplay(console, sweep.name) if console.is_terminal and not quiet else None
    try:
        with display or contextlib.nullcontext():
            status = run_sweep(
                sweep,
                address=address,
                cpus_per_trial=cpus_per_trial,
                num_cpus=cpus,
                on_status=display.update if display is not None else None,
            )
    except KeyboardInterrupt:
        err_console.print(
            "Sweep interrupted; running trials saved a checkpoint. Continue it with the same "
            "command.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    for trial, why in status.failed:
        err_console.print(
            f"[bold red]failed:[/] {escape(trial.config)} seed {trial.seed} ({trial.run_dir}): "
            f"{escape(why)}",
            highlight=False,
            soft_wrap=True,
        )
    import shlex
    import sys

    rows, table_path, png = write_summary(sweep, shlex.join(["farl", *sys.argv[1:]]))
    table = Table(title=f"sweep {sweep.name}: final evaluations", title_justify="left")
    widest = max((len(row["config"]) for row in rows), default=13)
    table.add_column("configuration", overflow="fold", min_width=max(13, min(widest, 40)))
    for column in ("seeds", "step", "final mean", "best mean"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("IQM [95% CI]", justify="right")
    solved = any(row["solved_fraction"] != "" for row in rows)
    if solved:
        table.add_column("solved", justify="right", no_wrap=True)
    for row in rows:
        cells = [
            row["config"], str(row["seeds"]), f"{row['step']:,}", f"{row['final_mean']:.4g}",
            f"{row['best_mean']:.4g}",
            f"{row['final_iqm']:.4g} [{row['final_iqm_low']:.4g}, {row['final_iqm_high']:.4g}]",
        ]  # fmt: skip
        if solved:
            value = row["solved_fraction"]
            cells.append("-" if value == "" else f"{value:.0%}")
        table.add_row(*cells)
    _print_wide(table)
    console.print(f"summary: {table_path}\nplot: {png}", highlight=False, soft_wrap=True)
    if status.failed:
        raise typer.Exit(1)


@app.command("tune")
@user_errors
def tune_command(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name or YAML file.")],
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            help="A range: section.key=KIND:values, KIND uniform|loguniform|int|choice "
            "(e.g. agent.learning_rate=loguniform:1e-4,1e-2).",
        ),
    ] = None,
    space_file: Annotated[
        Path | None, typer.Option(help="A YAML file of such ranges: {section.key: KIND:values}.")
    ] = None,
    trials: Annotated[int, typer.Option(help="Configurations to try.")] = 16,
    overrides: EverySetOpt = None,
    address: AddressOpt = None,
    cpus_per_trial: CpusOpt = 1.0,
    cpus: LocalCpusOpt = None,
    name: Annotated[
        str | None, typer.Option(help="The search's name, its directory under sweeps/.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of Optuna's sampler.")] = 0,
) -> None:
    """Search hyperparameters (Optuna's sampler, ASHA early stopping) on Ray."""
    from farl_cli.sweep import check_reachable, parse_space, run_tune

    stop_cleanly()
    if address is not None:
        check_reachable(address)
    dims = parse_space(list(space or []), space_file)
    result = run_tune(
        preset, dims, trials, list(overrides or []),
        name=name, address=address, cpus_per_trial=cpus_per_trial, num_cpus=cpus, seed=seed,
    )  # fmt: skip
    table = Table(title=f"{len(result.rows)} trials", title_justify="left")
    keys = [d.key for d in dims]
    for column in (*keys, "evaluations", "last eval", "stopped early"):
        table.add_column(column, justify="right")
    for row in sorted(result.rows, key=lambda r: -float(r["eval_return"] or "-inf")):
        value = row["eval_return"]
        table.add_row(
            *(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys),
            str(row["evaluations"]),
            row["error"] or (f"{value:.4g}" if value != "" else "-"),
            "yes" if row["stopped_early"] else "no",
        )
    _print_wide(table)
    console.print(f"trials: {result.table}", highlight=False, soft_wrap=True)
    if result.best_preset is None:
        raise FarlError("no trial finished an evaluation; see the trials table")
    console.print(
        f"best preset: {result.best_preset}\ntrain it with: farl train --preset "
        f"{result.best_preset}",
        highlight=False,
        soft_wrap=True,
    )


def _print_wide(table: Table) -> None:
    """A table whole: at the terminal's width, or at 160 columns into a file or pipe."""
    (console if console.is_terminal else Console(width=160)).print(table)


def _log_row(quiet: bool) -> Callable[[int, float, dict[str, Any]], None] | None:
    if quiet:
        return None

    def log(step: int, sps: float, row: dict[str, Any]) -> None:
        if "eval_return" in row:
            console.print(
                f"step {step:,}: eval return {row['eval_return']:.4f}, {sps:,.0f} steps/s",
                highlight=False,
            )

    return log


def _print_summary(result: Any) -> None:
    table = Table(title=f"run {result.status}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    rows = [
        ("steps", f"{result.global_step:,} in {result.elapsed:,.1f} s"),
        ("best eval return", "-" if result.best_eval is None else f"{result.best_eval:.4f}"),
        ("run directory", str(result.run_dir)),
        ("metrics", str(result.metrics_path)),
        ("last checkpoint", str(result.last_checkpoint)),
        ("best checkpoint", str(result.best_checkpoint or "-")),
        ("tensorboard", str(result.run_dir / "tensorboard") if result.tensorboard else "-"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command("eval")
@user_errors
def eval_command(
    checkpoint: CheckpointArg,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to run.")] = 100,
    num_envs: Annotated[int, typer.Option(min=1, help="Environments side by side.")] = 8,
    deterministic: DeterministicOpt = True,
    greedy: GreedyOpt = "mode",
    seed: Annotated[int, typer.Option(help="Seed of the evaluation episodes.")] = 12345,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="PyTorch threads.")] = 1,
    device: DeviceOpt = None,
) -> None:
    """Evaluate a checkpoint over many episodes: mean, spread, confidence, success rate."""
    import time

    import torch
    from rich.progress import Progress

    from farl_cli.envs.vector import env_factory
    from farl_cli.evaluation import evaluate
    from farl_cli.training import restore

    torch.set_num_threads(threads)
    restored = restore(checkpoint, device or "auto")
    act = restored.actor(deterministic, greedy)
    started = time.perf_counter()
    with Progress(console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("evaluating", total=episodes)
        stats = evaluate(
            act,
            env_factory(restored.preset.env),
            episodes,
            num_envs,
            seed,
            on_episode=lambda done: progress.update(task, completed=done),
        )
    elapsed = time.perf_counter() - started
    info = {
        "checkpoint": str(checkpoint),
        "preset": restored.preset.name,
        "env": restored.preset.env.name,
        "deterministic": deterministic,
        "greedy": greedy if deterministic else None,
        "seconds": elapsed,
        **stats.to_dict(),
    }
    if as_json:
        console.print_json(json.dumps(info))
        return
    how = "mean bins" if greedy == "mean" else "deterministic" if deterministic else "stochastic"
    table = Table(
        title=f"{restored.preset.name} on {restored.preset.env.name}: {stats.episodes:,} episodes "
        f"({how}, {elapsed:.1f} s)",
        title_justify="left",
        show_header=False,
    )
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_row(f"mean {stats.return_name}", f"{stats.mean:.4f} ± {stats.std:.4f} (std)")
    table.add_row(
        "95% confidence interval", f"{stats.mean - stats.ci95:.4f} to {stats.mean + stats.ci95:.4f}"
    )
    table.add_row("median", f"{stats.median:.4f}")
    table.add_row("min / max", f"{stats.min:.4f} / {stats.max:.4f}")
    table.add_row("mean episode length", f"{stats.mean_length:.1f}")
    if stats.success_rate is not None:
        table.add_row("success rate", f"{stats.success_rate:.2%}")
    console.print(table)


@app.command("enjoy")
@user_errors
def enjoy_command(
    checkpoint: CheckpointArg,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to play.")] = 3,
    video: Annotated[Path | None, typer.Option(help="Record to this .mp4 or .gif file.")] = None,
    fps: Annotated[int | None, typer.Option(min=1, help="Frames per second.")] = None,
    deterministic: DeterministicOpt = True,
    greedy: GreedyOpt = "mode",
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 0,
    render_3d: Annotated[
        bool,
        typer.Option("--render-3d", help="Football: the engine's slow 3D view, not its sketch."),
    ] = False,
    device: DeviceOpt = None,
) -> None:
    """Watch a policy play: in a window when there is a display, else recorded to a video."""
    import os

    from farl_cli.envs import make_factored_env
    from farl_cli.envs.wrappers import RecordFrames
    from farl_cli.evaluation import play
    from farl_cli.training import restore
    from farl_cli.video import VideoWriter

    restored = restore(checkpoint, device or "auto")
    act = restored.actor(deterministic, greedy)
    preset = restored.preset
    env: Any = make_factored_env(preset.env, render_mode="rgb_array")
    # a window where the environment can draw one (it declares the "human" render mode)
    window = (
        video is None
        and bool(os.environ.get("DISPLAY"))
        and "human" in env.metadata.get("render_modes", ())
    )
    writer = None
    if window:
        env.close()
        env = make_factored_env(preset.env, render_mode="human")
    else:
        env = RecordFrames(env, own_videos=not render_3d)
        path = video or Path(f"{preset.name}-enjoy.mp4")
        writer = VideoWriter(path, fps or int(env.metadata.get("render_fps", 30)))

    def on_episode(i: int, total: float, length: int, info: dict[str, Any]) -> None:
        extra = " (goal)" if info.get("is_success") else ""
        console.print(
            f"episode {i + 1}: return {total:.4f} in {length} steps{extra}", highlight=False
        )

    try:
        play(
            act,
            env,
            episodes,
            seed,
            on_frames=writer.add_frames if writer is not None else None,
            on_episode=on_episode,
        )
        env.close()  # an environment writing its own videos finishes them on close
        if writer is not None:
            for recorded in env.own_videos():
                writer.add_video(recorded)
    finally:
        env.close()
        if isinstance(env, RecordFrames):
            env.discard()
        if writer is not None:
            writer.close()
    if writer is not None:
        console.print(f"video: {writer.path} ({writer.frames} frames)", highlight=False)


def _values_cell(values: list[str], limit: int = 21) -> str:
    if len(values) > limit:
        values = [*values[: limit // 2], "...", *values[-(limit // 2) :]]
    return ", ".join(values)


def _print_description(info: dict[str, Any]) -> None:
    dims = info["dimensions"]
    depends = info["meaning_depends_on_previous"]
    table = Table(
        title=f"{info['target']}: {len(dims)} sub-action dimensions ({info['factorization']})",
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("size", justify="right")
    table.add_column("values", overflow="fold")
    has_target = "entropy_target" in dims[0]
    if has_target:
        table.add_column("entropy target", justify="right")
    for i, d in enumerate(dims):
        if depends and i > 0:
            values = f"{d['size']} bins; the value depends on dimension {i - 1} (below)"
        else:
            values = _values_cell(d["values"])
        row = [str(d["index"]), d["label"], str(d["size"]), values]
        if has_target:
            row.append(f"{d['entropy_target']:.4f}")
        table.add_row(*row)
    console.print(table)
    if depends:
        _print_dependent_values(dims)
    n = info["joint_actions"]
    sizes = " x ".join(str(d["size"]) for d in dims)
    lines = [
        f"joint actions       {sizes} = {n:,} (about {info['joint_actions_scientific']})",
        f"uniform entropy     sum of log n_i = {info['uniform_entropy']:.4f} nats",
    ]
    if "entropy_target" in info:
        lines.append(
            f"FSAC entropy target beta = {info['entropy_target_beta']:g}: "
            f"{info['entropy_target']:.4f} nats overall (beta * sum log n_i)"
        )
    lines += [
        f"policy head outputs {info['factored_head_outputs']:,} factored "
        f"against {info['flat_head_outputs']:,} for a flat policy",
        f"sampling            {info['sampling']}"
        + (
            " (all dimensions at once)"
            if info["sampling"] == "parallel"
            else f" ({len(dims)} steps, each head seeing the sub-actions before it)"
        ),
    ]
    for line in lines:
        console.print(line, highlight=False)


def _print_dependent_values(dims: list[dict[str, Any]]) -> None:
    first, second = dims[0], dims[1]
    table = Table(
        title=f"what {second['label']} means for each {first['label']}", title_justify="left"
    )
    table.add_column("bin", justify="right")
    for name in first["values"]:
        table.add_column(name, justify="right")
    labels = list(enumerate(second["values"]))
    shown = labels if len(labels) <= 25 else [*labels[:10], None, *labels[-10:]]
    for item in shown:
        if item is None:  # hundreds of bins: the ends say what the rows between hold
            table.add_row("...", *("..." for _ in first["values"]))
            continue
        j, label = item
        parts = [p.split(" ", 1)[-1] for p in label.split(" | ")]
        table.add_row(str(j), *parts)
    console.print(table)


def main() -> None:
    """Run the command line (``farl_cli.__main__.run`` handles signals first)."""
    app()


if __name__ == "__main__":
    from farl_cli.__main__ import run

    run()
