"""What a request decodes into, whatever its wire format: the observations an engine runs on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkPrefix:
    """Real-time chunking hint: the steps of the robot's current chunk that will still be executing
    when this request's reply is expected (`actions`, (k, dim), aligned to the observation's step 0),
    and how many steps the client expects to elapse before the reply lands (`delay_steps`)."""

    actions: np.ndarray
    delay_steps: int


@dataclass(frozen=True)
class ObservationBatch:
    """B decoded observations. images: camera -> (B, H, W, 3) uint8 RGB at model size.

    `timestamps` (capture time of each observation, seconds) and `prefixes` (a ChunkPrefix or None
    each) are optional: empty when the request did not carry them."""

    images: dict[str, np.ndarray]
    state: np.ndarray  # (B, action_dim) float32
    language: tuple[str, ...]
    timestamps: tuple[float, ...] = ()
    prefixes: tuple = ()

    @property
    def batch_size(self) -> int:
        return int(self.state.shape[0])
