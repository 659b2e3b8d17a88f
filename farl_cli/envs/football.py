"""Google Research Football through the gymnasium API (the optional ``football`` part).

The paper's setting (section 6.2): scenario ``academy_3_vs_1_with_keeper``, representation
``simple115v2``, the three left attackers controlled by one agent that chooses one of 19
actions for each, autoregressively, instead of one of 19^3 = 6859 joint actions. The agent
sees one vector of global features; the reward counts goals.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from farl_cli.errors import FarlError

INSTALL_HINT = (
    "Google Research Football is not installed; install it with: bash scripts/install-football.sh"
)
# gfootball's default action set, in its order
ACTION_NAMES = (
    "idle", "left", "top_left", "top", "top_right", "right", "bottom_right", "bottom",
    "bottom_left", "long_pass", "high_pass", "short_pass", "shot", "sprint",
    "release_direction", "release_sprint", "sliding", "dribble", "release_dribble",
)  # fmt: skip
FEATURES = 115
ACTIVE_PLAYER = slice(97, 108)  # simple115v2: one-hot of the player a row belongs to


@contextlib.contextmanager
def _quiet_old_gym() -> Iterator[None]:
    # gfootball runs on the unmaintained gym 0.25, which prints notices on import and warns
    # on every environment it wraps; none of it concerns farl's users.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def gfootball_env_module() -> Any:
    """``gfootball.env``, or a FarlError that says how to install it."""
    try:
        with _quiet_old_gym():
            import gfootball.env as football_env
    except ImportError:
        raise FarlError(INSTALL_HINT) from None
    return football_env


class FootballEnv(gym.Env):
    """One agent controlling ``players`` left players of a football academy scenario.

    Observation: the 115 ``simple115v2`` features of the first controlled player, whose
    active-player code is replaced by the set of controlled players: the global view.
    Action: ``MultiDiscrete([19] * players)``, one engine action per player.
    Reward: goals scored minus goals conceded in the step (``score_reward``).
    ``info["is_success"]`` marks an episode that ended with a goal for the agent.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "return_name": "goals",  # farl eval reports mean goals per episode
    }

    def __init__(
        self,
        scenario: str = "academy_3_vs_1_with_keeper",
        players: int = 3,
        render_mode: str | None = None,
        write_video: bool = False,
        logdir: str | None = None,
        duration: int = 400,
    ) -> None:
        # the engine is imported and started at the first reset: spaces and labels are
        # static, so inspecting the action space needs no engine
        self.scenario = scenario
        self.players = players
        self.render_mode = render_mode
        self.write_video = write_video
        self.logdir = logdir  # None: a temporary directory, made when the engine starts
        self._own_logdir: str | None = None
        self.action_space = spaces.MultiDiscrete([len(ACTION_NAMES)] * players)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(FEATURES,), dtype=np.float32)
        self.action_names = tuple(f"player {i + 1}" for i in range(players))
        self.action_value_names = (ACTION_NAMES,) * players
        self.duration = duration  # the academy scenarios' game_duration
        self._engine: Any = None
        self._steps = 0

    def _make_engine(self, seed: int) -> Any:
        football = gfootball_env_module()
        if self.logdir is None:
            self.logdir = self._own_logdir = tempfile.mkdtemp(prefix="farl-football-")
        try:
            with _quiet_old_gym():
                return football.create_environment(
                    env_name=self.scenario,
                    representation="simple115v2",
                    rewards="scoring",
                    number_of_left_players_agent_controls=self.players,
                    render=self.render_mode == "rgb_array" and not self.write_video,
                    write_video=self.write_video,
                    write_full_episode_dumps=self.write_video,
                    logdir=self.logdir,
                    other_config_options={"game_engine_random_seed": int(seed)},
                )
        except Exception as exc:  # the engine reports unknown scenarios in many ways
            raise FarlError(f"football scenario {self.scenario!r}: {exc}") from None

    def _global(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(self.players, FEATURES)
        out = obs[0].copy()
        out[ACTIVE_PLAYER] = obs[:, ACTIVE_PLAYER].max(axis=0)
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode whose engine seed comes from this environment's generator.

        The engine would otherwise replay one seed in every episode; drawing each episode's
        seed from ``np_random`` keeps a seeded run reproducible and its episodes different.
        """
        super().reset(seed=seed)
        engine_seed = int(self.np_random.integers(2**31 - 1))
        if self._engine is None:
            self._engine = self._make_engine(engine_seed)
        self._engine.unwrapped._config._values["game_engine_random_seed"] = engine_seed
        obs = self._engine.reset()
        self._steps = 0
        return self._global(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One engine step for all controlled players."""
        obs, _rewards, done, info = self._engine.step([int(a) for a in np.asarray(action)])
        self._steps += 1
        score = float(info.get("score_reward", 0.0))
        # the academy ends an episode after a fixed number of steps: that is a truncation
        out_of_time = done and score == 0.0 and self._steps >= self.duration
        info = dict(info)
        info["is_success"] = score > 0
        return self._global(obs), score, bool(done and not out_of_time), bool(out_of_time), info

    def record_episodes(self, directory: str) -> None:
        """From the next episode on, let the engine draw each episode's 2D sketch video into
        ``directory`` (far faster than rendering frames, which it then skips)."""
        self.close()  # the engine reads these settings when it is created
        self.write_video, self.logdir = True, directory

    def recorded_videos(self) -> list[Path]:
        """The 2D sketch videos the engine wrote (with ``write_video``), one per episode."""
        if self.logdir is None:
            return []
        return sorted(Path(self.logdir).glob("*.avi"), key=lambda p: p.stat().st_mtime)

    def render(self) -> np.ndarray | None:
        """The engine's rendered frame (slow without a GPU)."""
        if self.render_mode != "rgb_array" or self.write_video or self._engine is None:
            return None
        return self._engine.render(mode="rgb_array")

    def close(self) -> None:
        """Shut the engine down."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._own_logdir is not None:  # the engine's scratch files: nobody asked for them
            shutil.rmtree(self._own_logdir, ignore_errors=True)
            self.logdir = self._own_logdir = None
