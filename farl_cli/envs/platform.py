"""The Platform game (Masson, Ranchod and Konidaris, 2016), to an exact specification.

A player runs, hops or leaps right across three platforms (x from 0 to 250, 475 to 750 and
985 to 1035, all 40 high) over two gaps, past an enemy pacing on each of the first two, to
the goal at x = 1035. One action lasts several physics frames of DT = 0.05: a run 20 frames,
a hop or leap until the player stands on a platform again. Each frame, in this order (the
comments below cite these numbers):

1. on a platform means y == 40 and platform.x - 20 <= x <= platform.x + width;
2. on a platform the action applies: run(p) adds p to vx (at most 30 a frame); hop and
   leap take off by the jump rule with dy0 = 35 and 25; off a platform gravity takes 9.8 *
   DT from vy;
3. the jump rule: T = 2 dy0 / 9.8 + 1, dx0 = p / T - vx clipped to [-600, 200 - dy0], two
   take-off noises -|N(0, 1)| (n0 then n1), vx += clip(dx0 + n0, -30, 30), vy += dy0 + n1;
4. after every speed change vx loses |N(0, 0.025)|, vx is clipped to [-100, 100] and vy to
   [-200, 200], then vx to >= 0;
5. on a platform (tested again) vx is clipped to [0, 70];
6. the active enemy is the second when x > 475, else the first; only it moves;
7. the player moves by velocity * DT, x clipped to [0, 1035], then vx *= 0.99;
8. the active enemy reverses at its platform's ends, its speed gets N(0, 0.025) noise
   (clipped to [-30, 30]) and it moves, clipped to its platform;
9. a player overlapping a platform is pushed out along the axis of smaller displacement
   (a landing snaps y to 40), and every push sets vx to 0;
10. the step's reward is (x - x_start) / 1035, recomputed each frame;
11. the episode ends when y < 40 (fallen into a gap), when the player touches either enemy,
    or at x >= 1035 (the goal, reward (1035 - x_start) / 1035).

An episode's return therefore telescopes to final_x / 1035, exactly 1.0 at the goal. One
numpy generator serves every random draw, in the order above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DT = 0.05
GRAVITY = 9.8
MAX_DX, MAX_DY = 100.0, 200.0
MAX_DX_ON = 70.0
MAX_DDX, MAX_DDY = 600.0, 4000.0  # speed changes per frame are these times DT: 30 and 200
VELOCITY_DECAY = 0.99
ENEMY_SPEED = 30.0
SPEED_NOISE = 0.5 * DT  # standard deviation of player and enemy speed noise
TAKEOFF_NOISE = 1.0
SIZE_W, SIZE_H = 20.0, 30.0  # player and enemies
PLATFORM_TOP = 40.0
GOAL_X = 1035.0
RUN_FRAMES = 20
MAX_ACTIONS = 200
# (x, width) of the three platforms; every platform is 40 high with its bottom at y = 0
PLATFORMS: tuple[tuple[float, float], ...] = ((0.0, 250.0), (475.0, 275.0), (985.0, 50.0))
PARAM_HIGH = (30.0, 720.0, 430.0)  # run, hop, leap
ACTION_NAMES = ("run", "hop", "leap")
JUMP_DY0 = {1: 35.0, 2: 25.0}  # hop, leap

OBS_SHIFT = np.array([SIZE_W, 0, 0, ENEMY_SPEED, 0, 0, 0, 0, 0], dtype=np.float64)
OBS_SCALE = np.array([GOAL_X + SIZE_W, MAX_DX, GOAL_X, 2 * ENEMY_SPEED, 275, 275, 235, GOAL_X, 1])

SCREEN_W, SCREEN_H, SCREEN_OFFSET = int(GOAL_X), 300, 50


def _clip(x: float, low: float, high: float) -> float:
    # np.clip on Python scalars costs microseconds; this runs several times per frame
    return low if x < low else high if x > high else x


@dataclass
class _Enemy:
    platform: int
    x: float = 0.0
    speed: float = -ENEMY_SPEED

    def reset(self) -> None:
        px, width = PLATFORMS[self.platform]
        self.x = px + width - SIZE_W  # the platform's right end minus the enemy's width
        self.speed = -ENEMY_SPEED

    def move(self, rng: np.random.Generator) -> None:
        """Step 8: bounce at the platform's ends, noisy speed, clipped position."""
        px, width = PLATFORMS[self.platform]
        right = px + width - SIZE_W
        if not px < self.x < right:
            self.speed = -self.speed
        self.speed += float(rng.normal(0.0, SPEED_NOISE))
        self.speed = _clip(self.speed, -ENEMY_SPEED, ENEMY_SPEED)
        self.x = _clip(self.x + self.speed * DT, px, right)


class PlatformEnv(gym.Env):
    """Run, hop or leap across three platforms and two gaps, avoiding two enemies.

    Native action: ``(choice, (run_param, hop_param, leap_param))``; only the chosen
    parameter is used, clipped to its range. One ``step`` is one action of several physics
    frames. The return of an episode telescopes to ``final_x / 1035``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array", "rgb_array_list"],
        "render_fps": int(1 / DT),
    }
    action_names = ACTION_NAMES

    def __init__(self, render_mode: str | None = None, max_actions: int = MAX_ACTIONS) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.max_actions = max_actions
        self.action_space = spaces.Tuple(
            (
                spaces.Discrete(3),
                spaces.Tuple(
                    tuple(
                        spaces.Box(0.0, high, shape=(1,), dtype=np.float32) for high in PARAM_HIGH
                    )
                ),
            )
        )
        self.observation_space = spaces.Box(0.0, 1.0, shape=(9,), dtype=np.float32)
        self.x = self.y = self.vx = self.vy = 0.0
        self.enemies = (_Enemy(0), _Enemy(1))
        self.actions_taken = 0
        self._frames: list[tuple[float, float, float, float]] = []  # (x, y, enemy1 x, enemy2 x)
        self._pending_frames: list[tuple[float, float, float, float]] = []

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Player at (0, 40) at rest, enemies at their platforms' right ends."""
        super().reset(seed=seed)
        self.x, self.y, self.vx, self.vy = 0.0, PLATFORM_TOP, 0.0, 0.0
        for enemy in self.enemies:
            enemy.reset()
        self.actions_taken = 0
        self._frames = [self._snapshot()]
        self._pending_frames = list(self._frames)
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action for all its frames; return the usual five-tuple."""
        choice, param = self._parse_action(action)
        x_start = self.x
        reward, terminated, cause, frames = 0.0, False, "", 0
        self._frames = []
        while True:
            self._frame(choice, param)
            frames += 1
            reward = (self.x - x_start) / GOAL_X  # step 10
            cause = self._termination_cause()
            if cause == "goal":
                reward = (GOAL_X - x_start) / GOAL_X
            if self.render_mode is not None:
                self._frames.append(self._snapshot())
            if cause:
                terminated = True
                break
            if choice == 0:
                if frames >= RUN_FRAMES:
                    break
            elif self._on_platform():  # hop, leap: until standing on a platform again
                break
        self._pending_frames.extend(self._frames)
        self.actions_taken += 1
        truncated = not terminated and self.actions_taken >= self.max_actions
        info = {"frames": frames, "is_success": cause == "goal"}
        if cause:
            info["termination"] = cause
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | list[np.ndarray] | None:
        """``rgb_array``: the current frame; ``rgb_array_list``: every frame since last call."""
        if self.render_mode == "rgb_array":
            return self._draw(self._snapshot())
        if self.render_mode == "rgb_array_list":
            frames = [self._draw(s) for s in self._pending_frames]
            self._pending_frames = []
            return frames
        return None

    def snapshot(self) -> dict[str, Any]:
        """Everything the next step depends on, so that a resumed run continues exactly.

        Plain Python numbers (a take-off's noise makes the speeds numpy scalars), so that a
        checkpoint holding it loads with ``weights_only``.
        """
        return {
            "player": [float(v) for v in (self.x, self.y, self.vx, self.vy)],
            "enemies": [[float(e.x), float(e.speed)] for e in self.enemies],
            "actions_taken": int(self.actions_taken),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.x, self.y, self.vx, self.vy = (float(v) for v in state["player"])
        for enemy, (x, speed) in zip(self.enemies, state["enemies"], strict=True):
            enemy.x, enemy.speed = float(x), float(speed)
        self.actions_taken = int(state["actions_taken"])
        self._frames = [self._snapshot()]
        self._pending_frames = list(self._frames)

    def frames_of_last_action(self) -> np.ndarray:
        """Every physics frame of the last action as ``[frames, 300, 1035, 3]`` uint8 images."""
        if self.render_mode is None:
            raise RuntimeError("create the environment with a render_mode to record frames")
        return np.stack([self._draw(s) for s in self._frames])

    # ------------------------------------------------------------------ physics

    def _parse_action(self, action: Any) -> tuple[int, float]:
        try:
            choice = int(action[0])
            params = action[1]
            raw = params[choice]
            param = float(np.asarray(raw, dtype=np.float64).reshape(-1)[0])
        except (TypeError, IndexError, ValueError) as exc:
            raise ValueError(
                f"a Platform action is (choice, (run, hop, leap)), got {action!r}"
            ) from exc
        if choice not in (0, 1, 2):
            raise ValueError(f"the choice must be 0 (run), 1 (hop) or 2 (leap), got {choice}")
        return choice, _clip(param, 0.0, PARAM_HIGH[choice])

    def _on_platform(self) -> bool:
        """Step 1: standing exactly on a top surface."""
        return self.y == PLATFORM_TOP and any(
            px - SIZE_W <= self.x <= px + width for px, width in PLATFORMS
        )

    def _accelerate(self, ddx: float, ddy: float) -> None:
        """A speed change followed by step 4's noise and bounds."""
        self.vx += _clip(ddx, -MAX_DDX, MAX_DDX) * DT
        self.vy += _clip(ddy, -MAX_DDY, MAX_DDY) * DT
        self.vx -= abs(float(self.np_random.normal(0.0, SPEED_NOISE)))
        self.vx = _clip(self.vx, -MAX_DX, MAX_DX)
        self.vy = _clip(self.vy, -MAX_DY, MAX_DY)
        self.vx = max(self.vx, 0.0)

    def _jump(self, param: float, dy0: float) -> None:
        """Step 3, the jump rule."""
        duration = 2.0 * dy0 / GRAVITY + 1.0
        dx0 = _clip(param / duration - self.vx, -MAX_DDX, MAX_DY - dy0)
        noise = -np.abs(self.np_random.normal(0.0, TAKEOFF_NOISE, 2))  # n0 then n1
        self._accelerate((dx0 + noise[0]) / DT, (dy0 + noise[1]) / DT)

    def _frame(self, choice: int, param: float) -> None:
        if self._on_platform():  # step 2
            if choice == 0:
                self._accelerate(param / DT, 0.0)
            else:
                self._jump(param, JUMP_DY0[choice])
        else:
            self._accelerate(0.0, -GRAVITY)
        if self._on_platform():  # step 5
            self.vx = _clip(self.vx, 0.0, MAX_DX_ON)
        active = self.enemies[1] if self.x > PLATFORMS[1][0] else self.enemies[0]  # step 6
        # step 7
        self.x = _clip(self.x + self.vx * DT, 0.0, GOAL_X)
        self.y = self.y + self.vy * DT
        self.vx *= VELOCITY_DECAY
        active.move(self.np_random)  # step 8
        for px, width in PLATFORMS:  # step 9
            if px - SIZE_W < self.x < px + width and -SIZE_H < self.y < PLATFORM_TOP:
                self._push_out(px, width)
                self.vx = 0.0

    def _push_out(self, px: float, width: float) -> None:
        new_x = self.x
        if self.x < px:
            new_x = px - SIZE_W
        elif self.x > px + width - SIZE_W:
            new_x = px + width
        new_y = self.y
        if self.y < 0.0:
            new_y = -SIZE_H
        elif self.y > PLATFORM_TOP - SIZE_H:
            new_y = PLATFORM_TOP
        if new_x == self.x:
            self.y, self.vy = new_y, 0.0
        elif new_y == self.y or abs(self.x - new_x) < abs(self.y - new_y):
            self.x, self.vx = new_x, 0.0
        else:
            self.y, self.vy = new_y, 0.0

    def _termination_cause(self) -> str:
        """Step 11; the goal is tested last so that it sets the reward even on a tie."""
        cause = ""
        if self.y < PLATFORM_TOP:
            cause = "fell"
        for enemy in self.enemies:
            if abs(self.x - enemy.x) < SIZE_W and PLATFORM_TOP - SIZE_H < self.y < (
                PLATFORM_TOP + SIZE_H
            ):
                cause = "enemy"
        if self.x >= GOAL_X:
            cause = "goal"
        return cause

    def _observation(self) -> np.ndarray:
        if self.x < PLATFORMS[1][0]:
            platform = (250.0, 275.0, 225.0, 0.0, 0.0)
        elif self.x < PLATFORMS[2][0]:
            platform = (275.0, 50.0, 235.0, 475.0, 0.0)
        else:
            platform = (50.0, 0.0, 0.0, 985.0, 0.0)
        enemy = self.enemies[1] if self.x > PLATFORMS[1][0] else self.enemies[0]
        raw = np.array([self.x, self.vx, enemy.x, enemy.speed, *platform], dtype=np.float64)
        return ((raw + OBS_SHIFT) / OBS_SCALE).astype(np.float32)

    # ------------------------------------------------------------------ rendering

    def _snapshot(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.enemies[0].x, self.enemies[1].x)

    @staticmethod
    def _draw(state: tuple[float, float, float, float]) -> np.ndarray:
        img = np.empty((SCREEN_H, SCREEN_W, 3), dtype=np.uint8)
        img[:] = (214, 234, 248)  # sky

        def rect(x: float, y: float, w: float, h: float, color: tuple[int, int, int]) -> None:
            # y points up and everything sits SCREEN_OFFSET pixels above the bottom
            top = round(SCREEN_H - SCREEN_OFFSET - (y + h))
            bottom = round(SCREEN_H - SCREEN_OFFSET - y)
            left, right = round(x), round(x + w)
            img[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = color

        rect(0, -SCREEN_OFFSET, SCREEN_W, SCREEN_OFFSET, (60, 60, 80))  # the pit below the gaps
        for px, width in PLATFORMS:
            rect(px, 0.0, width, PLATFORM_TOP, (110, 85, 60))
        rect(GOAL_X - 3, PLATFORM_TOP, 3, 60, (40, 170, 60))  # goal marker
        x, y, e1, e2 = state
        for ex in (e1, e2):
            rect(ex, PLATFORM_TOP, SIZE_W, SIZE_H, (200, 40, 40))
        rect(x, y, SIZE_W, SIZE_H, (30, 70, 200))
        return img
