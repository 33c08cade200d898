"""Deterministic test images and the chunk the `hold` mock must return, written out independently of
the engine."""

from types import SimpleNamespace

import numpy as np

from alfie_gr00t import layout


def make_frame(width=layout.IMAGE_WIDTH, height=layout.IMAGE_HEIGHT, seed=0) -> np.ndarray:
    """A deterministic RGB test pattern with structure JPEG can keep."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    np.full_like(x, (seed * 40) % 256)], axis=-1)
    return rgb.astype(np.uint8)


def image_message(rgb: np.ndarray) -> SimpleNamespace:
    """The sensor_msgs/Image fields the client reads (height, width, encoding, step, data), for an RGB frame."""
    height, width = rgb.shape[:2]
    return SimpleNamespace(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())


def hold_chunk(state) -> np.ndarray:
    """What the `hold` mock must return (docs/design.md#mock-policies), written out independently of the engine: joint dims
    hold the state for every step; base dims 0-5 of step i are state * exp(-i/4). state: (D,) or (B, D)."""
    state = np.asarray(state, dtype=np.float32)
    steps = np.arange(layout.ACTION_HORIZON, dtype=np.float32)
    chunk = np.repeat(state[..., None, :], layout.ACTION_HORIZON, axis=-2).copy()
    for i in steps.astype(int):
        chunk[..., i, :6] = state[..., :6] * np.float32(np.exp(-i / 4.0))
    return chunk
