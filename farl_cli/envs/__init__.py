"""One registry of every environment name farl knows: ``make_env(name, **kwargs)``."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from farl_cli.errors import FarlError

if TYPE_CHECKING:
    from farl_cli.config import EnvConfig
    from farl_cli.envs.wrappers import FactoredActions

# MuJoCo renders through EGL when no display is there to open a window on (glfw would crash).
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

PLATFORM_ID = "farl/Platform-v0"
MUJOCO_IDS: dict[str, str] = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "humanoid": "Humanoid-v5",
}
GYM_PREFIX = "gym:"

if PLATFORM_ID not in gym.registry:
    gym.register(PLATFORM_ID, entry_point="farl_cli.envs.platform:PlatformEnv")


class UnknownEnvironmentError(FarlError):
    """An environment name that is not in the registry."""


FOOTBALL_SCENARIOS = {"football-3v1": "academy_3_vs_1_with_keeper"}
FOOTBALL_PREFIX = "football:"


def is_football(name: str) -> bool:
    """Whether ``name`` is a football scenario, whose actions are discrete (no bins)."""
    return name in FOOTBALL_SCENARIOS or name.startswith(FOOTBALL_PREFIX)


def known_names() -> list[str]:
    """Every name ``make_env`` accepts; ``gym:<ID>`` and ``football:<scenario>`` are families."""
    return [
        "platform",
        *MUJOCO_IDS,
        *FOOTBALL_SCENARIOS,
        f"{FOOTBALL_PREFIX}<scenario>",
        f"{GYM_PREFIX}<ID>",
    ]


def make_env(name: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Build an environment by farl name, with its native action space."""
    if name == "platform":
        from farl_cli.envs.platform import PlatformEnv

        return PlatformEnv(render_mode=render_mode, **kwargs)
    if name in MUJOCO_IDS:
        return _gym_make(MUJOCO_IDS[name], render_mode, kwargs)
    if is_football(name):
        from farl_cli.envs.football import FootballEnv

        scenario = FOOTBALL_SCENARIOS.get(name) or name[len(FOOTBALL_PREFIX) :]
        return FootballEnv(scenario=scenario, render_mode=render_mode, **kwargs)
    if name.startswith(GYM_PREFIX) and len(name) > len(GYM_PREFIX):
        return _gym_make(name[len(GYM_PREFIX) :], render_mode, kwargs)
    names = known_names()
    close = difflib.get_close_matches(name, names[:-2], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownEnvironmentError(f"unknown environment {name!r}; known: {', '.join(names)}.{hint}")


def _gym_make(env_id: str, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    try:
        return gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise FarlError(f"{env_id} needs a missing dependency: {exc}") from exc
    except (gym.error.Error, TypeError) as exc:
        raise UnknownEnvironmentError(f"gymnasium cannot make {env_id!r}: {exc}") from exc


def make_factored_env(cfg: EnvConfig, render_mode: str | None = None) -> FactoredActions:
    """The environment a preset's ``env`` section describes, its actions factored."""
    from farl_cli.envs.wrappers import factorize

    env = make_env(cfg.name, render_mode=render_mode, **cfg.kwargs)
    radix = tuple(cfg.radix) if cfg.radix else None
    try:
        return factorize(env, bins=cfg.bins, factorization=cfg.factorization, radix=radix)
    except FarlError:
        env.close()
        raise
