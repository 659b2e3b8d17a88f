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
FOOTBALL_3V1_ID = "farl/Football-3v1-v0"
FOOTBALL_ID = "farl/Football-v0"  # any academy scenario, given as scenario=...
GYM_PREFIX = "gym:"
FOOTBALL_PREFIX = "football:"

# farl's own environments, registered like any other: gymnasium.make("farl/Platform-v0")
_OWN = {
    PLATFORM_ID: ("farl_cli.envs.platform:PlatformEnv", {}),
    FOOTBALL_3V1_ID: (
        "farl_cli.envs.football:FootballEnv",
        {"scenario": "academy_3_vs_1_with_keeper"},
    ),
    FOOTBALL_ID: ("farl_cli.envs.football:FootballEnv", {}),
}
for _id, (_entry, _kwargs) in _OWN.items():
    if _id not in gym.registry:  # their own tests check them: no passive checker on top
        gym.register(_id, entry_point=_entry, kwargs=_kwargs, disable_env_checker=True)

# farl's short names, each a gymnasium id
ENV_IDS: dict[str, str] = {
    "platform": PLATFORM_ID,
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "humanoid": "Humanoid-v5",
    "football-3v1": FOOTBALL_3V1_ID,
}


class UnknownEnvironmentError(FarlError):
    """An environment name that is not in the registry."""


def known_names() -> list[str]:
    """Every name ``make_env`` accepts; ``gym:<ID>`` and ``football:<scenario>`` are families."""
    return [*ENV_IDS, f"{FOOTBALL_PREFIX}<scenario>", f"{GYM_PREFIX}<ID>"]


def gym_id(name: str) -> tuple[str, dict[str, Any]]:
    """The gymnasium id (and its fixed arguments) behind a farl environment name."""
    if name in ENV_IDS:
        return ENV_IDS[name], {}
    if name.startswith(FOOTBALL_PREFIX) and len(name) > len(FOOTBALL_PREFIX):
        return FOOTBALL_ID, {"scenario": name[len(FOOTBALL_PREFIX) :]}
    if name.startswith(GYM_PREFIX) and len(name) > len(GYM_PREFIX):
        return name[len(GYM_PREFIX) :], {}
    names = known_names()
    close = difflib.get_close_matches(name, names[:-2], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownEnvironmentError(f"unknown environment {name!r}; known: {', '.join(names)}.{hint}")


def make_env(name: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Build an environment by farl name through ``gymnasium.make``, native action space."""
    env_id, fixed = gym_id(name)
    return _gym_make(env_id, render_mode, {**fixed, **kwargs})


def _gym_make(env_id: str, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    try:
        return gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise FarlError(f"{env_id} needs a missing dependency: {exc}") from exc
    except (gym.error.Error, TypeError) as exc:
        raise UnknownEnvironmentError(f"gymnasium cannot make {env_id!r}: {exc}") from exc


def make_factored_env(cfg: EnvConfig, render_mode: str | None = None) -> FactoredActions:
    """The environment a preset's ``env`` section describes, its actions factored, with
    gymnasium's episode statistics (``info["episode"]`` when an episode ends)."""
    from gymnasium.wrappers import RecordEpisodeStatistics

    from farl_cli.envs.wrappers import factorize

    env = RecordEpisodeStatistics(make_env(cfg.name, render_mode=render_mode, **cfg.kwargs))
    radix = tuple(cfg.radix) if cfg.radix else None
    try:
        return factorize(env, bins=cfg.bins, factorization=cfg.factorization, radix=radix)
    except FarlError:
        env.close()
        raise
