"""Recording episodes to MP4 or GIF (the optional ``video`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farl_cli.errors import FarlError

INSTALL_HINT = "recording video needs imageio: pip install 'farl[video]'"


class VideoWriter:
    """Frames to an MP4 (H.264, through imageio-ffmpeg) or, for ``.gif``, an animated GIF."""

    def __init__(self, path: Path, fps: int) -> None:
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise FarlError(INSTALL_HINT) from None
        if path.suffix.lower() not in (".mp4", ".gif"):
            raise FarlError(f"{path}: the video file must end in .mp4 or .gif")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        try:
            if path.suffix.lower() == ".gif":
                self._writer: Any = imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)
            else:
                self._writer = imageio.get_writer(path, fps=fps, macro_block_size=1)
        except (ImportError, RuntimeError, ValueError) as exc:
            raise FarlError(f"{INSTALL_HINT} ({exc})") from None

    def add(self, frame: np.ndarray) -> None:
        """Append one RGB frame; odd sizes are padded (H.264 needs even ones)."""
        h, w = frame.shape[:2]
        if self.path.suffix.lower() == ".mp4" and (h % 2 or w % 2):
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._writer.append_data(frame)
        self.frames += 1

    def add_frames(self, frames: list[np.ndarray]) -> None:
        """Append several frames."""
        for frame in frames:
            self.add(frame)

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()

    def add_video(self, path: Path) -> None:
        """Append every frame of another video file."""
        import imageio.v2 as imageio

        reader = imageio.get_reader(path)
        try:
            for frame in reader:
                self.add(np.asarray(frame))
        finally:
            reader.close()
