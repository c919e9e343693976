"""A drawing for Chromium's fake camera: a generated symbol in a 4:3 frame, written as a Y4M video.

Chromium plays the file in a loop as its webcam with ``--use-fake-device-for-media-stream
--use-file-for-fake-video-capture=<file.y4m>`` (and ``--use-fake-ui-for-media-stream`` to skip the
permission prompt). Used by the browser tests and ``scripts/camera_shots.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vit.loading import border_colour
from vit.symbols import render_symbol

CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def drawing_frame(label: str, seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A 4:3 camera frame (height, width, 3) uint8: a square drawing, padded with its border colour."""
    image, _ = render_symbol(np.random.default_rng(seed), label, S=height)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = border_colour(Image.fromarray(image))
    left = (width - height) // 2
    frame[:, left:left + height] = image
    return frame


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 5) -> Path:
    """A Y4M video of ``frames`` identical 4:2:0 frames (BT.601, studio range) for Chromium's fake camera."""
    h, w, _ = rgb.shape
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def quarter(c: np.ndarray) -> np.ndarray:  # 2×2 means: the chroma planes of 4:2:0
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = b"".join(np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes() for p in (y, quarter(u), quarter(v)))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)
    return path
