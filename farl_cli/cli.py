"""The ``farl`` command line. Thin: parse, call the library, print with Rich."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farl_cli import __version__
from farl_cli.errors import FarlError

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


def user_errors(fn: F) -> F:
    """Turn a FarlError into its message on stderr and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FarlError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
            raise typer.Exit(2) from None

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


@app.command("presets")
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
            str(p.env.bins) if p.env.name != "football-3v1" else "-",
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
    from farl_cli.config import EnvConfig, FSACConfig, PresetError, load_preset
    from farl_cli.config import resolve_preset_path as preset_path
    from farl_cli.envs import UnknownEnvironmentError, make_factored_env
    from farl_cli.spaces import describe

    beta = None
    overrides = {k: v for k, v in (("bins", bins), ("factorization", factorization)) if v}
    if preset_path(target) is not None:
        preset = load_preset(target, [f"env.{k}={v}" for k, v in overrides.items()])
        env_cfg = preset.env
        if isinstance(preset.agent, FSACConfig):
            beta = preset.agent.entropy_target_beta
    else:
        try:
            env_cfg = EnvConfig(name=target, **overrides)
        except ValueError as exc:
            raise PresetError(f"{target}: {exc}") from None
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


def _values_cell(values: list[str], limit: int = 13) -> str:
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
    for j, label in enumerate(second["values"]):
        parts = [p.split(" ", 1)[-1] for p in label.split(" | ")]
        table.add_row(str(j), *parts)
    console.print(table)


def main() -> None:
    """Entry point of the ``farl`` console script."""
    app()


if __name__ == "__main__":
    main()
