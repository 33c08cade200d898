"""The mock engine: hold position. Step i of the chunk is `state * exp(-i/4)` (SPEC §4).

It stands in for a GPU and a GR00T checkpoint, which do not exist on CI machines.
"""

from __future__ import annotations

import time

import numpy as np

from alfie_gr00t.engines.base import Engine, EngineConfig, EngineOutput, ObservationBatch


class MockEngine(Engine):
    name = "mock"
    max_batch_size = 64

    def __init__(self, config: EngineConfig):
        self._delay_s = max(0.0, config.mock_delay_ms) / 1000.0
        steps = np.arange(config.action_horizon, dtype=np.float32)
        self._decay = np.exp(-steps / 4.0)[None, :, None]  # (1, H, 1)

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        if self._delay_s:
            time.sleep(self._delay_s)
        actions = (batch.state[:, None, :] * self._decay).astype(np.float32, copy=False)
        return EngineOutput(actions, {"inference": (time.perf_counter() - start) * 1000.0})
