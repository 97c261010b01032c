"""Pictures of a trained policy: episodes rendered (Gymnasium's rgb_array) into a GIF or
an MP4, for `runt visualize` and GET /models/<id>/replay.gif."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from actors.envs.build import make_env
from actors.export.checkpoints import policy_from_checkpoint

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
MAX_FRAMES = 2000  # per file: a GIF of more frames is too large to be useful
FRAME_MS = 33  # ~30 frames per second


class CannotRender(Exception):
    pass


def render_episodes(
    meta: dict[str, Any], weights: bytes, episodes: int = 1, seed: int = 0, every: int = 1
) -> list[np.ndarray]:
    """Frames of `episodes` greedy episodes (every `every`-th frame)."""
    policy = policy_from_checkpoint(meta, weights)
    try:
        env = make_env(meta["env_id"], {**meta.get("env_params", {}), "render_mode": "rgb_array"})
    except Exception as exc:
        raise CannotRender(f"{meta['env_id']} cannot render: {exc}") from exc
    frames: list[np.ndarray] = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done, step = False, 0
            while not done and len(frames) < MAX_FRAMES:
                if step % every == 0:
                    frame = env.render()
                    if frame is None:
                        raise CannotRender(f"{meta['env_id']} does not render rgb_array frames")
                    frames.append(np.asarray(frame, dtype=np.uint8))
                action = policy.greedy(np.asarray(obs, dtype=np.float32)[None])[0]
                obs, _, terminated, truncated, _ = env.step(action)
                done, step = terminated or truncated, step + 1
    finally:
        env.close()
    return frames


def gif_bytes(frames: list[np.ndarray], scale: float = 0.5) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    if scale != 1.0:
        size = (max(1, int(images[0].width * scale)), max(1, int(images[0].height * scale)))
        images = [im.resize(size) for im in images]
    out = io.BytesIO()
    images[0].save(
        out, format="GIF", save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0
    )
    return out.getvalue()


def write(frames: list[np.ndarray], path: Path) -> None:
    """GIF by extension .gif; MP4 (needs imageio with ffmpeg) by .mp4."""
    if path.suffix.lower() == ".mp4":
        try:
            import imageio.v3 as iio
        except ImportError as exc:
            raise CannotRender("MP4 needs `pip install imageio[ffmpeg]`; use .gif") from exc
        iio.imwrite(path, np.stack(frames), fps=1000 // FRAME_MS)
    else:
        path.write_bytes(gif_bytes(frames, scale=1.0))
