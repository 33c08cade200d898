"""What an unmodified Isaac-GR00T client sends (per-group states, (B, 1, H, W, 3) video, [[task]]
language), and a mock engine that counts the batches it was given."""

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.engines.base import Engine
from alfie_gr00t.engines.mock import MockEngine

from support.frames import make_frame

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
DIM = layout.ACTION_DIM
MODEL_SIZE = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT)


class CountingEngine(Engine):
    """The mock engine, counting calls and keeping the last batch it was given."""

    name = "mock"

    def __init__(self, inner: MockEngine):
        self.inner = inner
        self.max_batch_size = inner.max_batch_size
        self.calls: list[int] = []
        self.last_batch = None

    def infer(self, batch):
        self.calls.append(batch.batch_size)
        self.last_batch = batch
        return self.inner.infer(batch)


def states_for(batch: int, offset: float = 0.0) -> np.ndarray:
    """(B, 21) float32 states, distinct per item and per dim, inside every joint range."""
    base = np.linspace(-0.3, 0.3, DIM, dtype=np.float32)
    return np.stack([base * (i + 1) / batch + offset + 0.01 * i for i in range(batch)]).astype(np.float32)


def upstream_observation(states: np.ndarray, sizes: dict | None = None, task: str = "pick up the can") -> dict:
    """An observation as upstream's PolicyClient sends it: video (B,1,H,W,3) uint8,
    state (B,1,D) float32 per key, language [[str]] * B."""
    batch = states.shape[0]
    sizes = sizes or {}
    video = {}
    for c, cam in enumerate(CAMERAS):
        width, height = sizes.get(cam, MODEL_SIZE)
        video[cam] = np.stack([make_frame(width, height, seed=c + 10 * i) for i in range(batch)])[:, None]
    state = {g.name: np.ascontiguousarray(states[:, None, g.start:g.stop], dtype=np.float32) for g in GROUPS}
    return {"video": video, "state": state, "language": {"task": [[f"{task} {i}"] for i in range(batch)]}}
