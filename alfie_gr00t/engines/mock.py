"""The mock engine: stands in for a GPU and a GR00T checkpoint, which do not exist on CI machines.

Two policies (`mock_policy`):

- `hold` (docs/design.md#mock-policies): the joint dims (6+) of every step hold the received
  state; the base-velocity dims 0-5 of step i are `state * exp(-i/4)` (velocities decay to zero).
  Never a move toward the zero pose.
- `trajectory`: step i is `trajectory_at(timestamp + i / action_step_hz)`, a smooth known function
  of time (slow sinusoids on several joints, inside the default limits), so tracking error can be
  measured end to end. A request that carries a chunk prefix (real-time chunking) gets that prefix
  back for its first `delay_steps` steps, then a short blend into the trajectory.

`mock_delay_ms` + uniform `mock_jitter_ms` simulate the real policy's latency.
"""

from __future__ import annotations

import random
import time

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.engines.base import MOCK_POLICIES, Engine, EngineConfig, EngineOutput, ObservationBatch

MOCK_DESCRIPTIONS = {"hold": "hold position", "trajectory": "trajectory: slow sinusoids on several joints"}


def describe(policy: str) -> str:
    """How the log names the mock engine running `policy`: 'mock (hold position)'."""
    return f"mock ({MOCK_DESCRIPTIONS.get(policy, policy)})"
TRAJECTORY_STEP_HZ = 15.0  # the training rate the trajectory's steps are spaced at (docs/design.md#the-21-d-layout)
BLEND_STEPS = 4  # steps over which a prefix's end blends into the trajectory

# (dim, centre rad, amplitude rad, frequency Hz, phase rad): inside every joint's default limits and
# under 0.4 rad/s peak speed, well below the 1.5 rad/s joint velocity limit.
_TRAJECTORY = (
    (7, 0.3, 0.25, 0.20, 0.0),   # left_shoulder_pitch
    (8, 0.4, 0.30, 0.15, 1.0),   # left_elbow_pitch
    (13, -0.3, 0.25, 0.20, 2.0),  # right_shoulder_pitch
    (14, 0.4, 0.30, 0.15, 3.0),  # right_elbow_pitch
    (18, -0.2, 0.20, 0.10, 0.5),  # head_yaw
    (19, -0.3, 0.15, 0.12, 1.5),  # head_pitch
)
TRAJECTORY_DIMS = tuple(d for d, *_ in _TRAJECTORY)  # the dims the trajectory moves (the others stay 0)


def trajectory_at(times, dim: int = layout.ACTION_DIM) -> np.ndarray:
    """The `trajectory` policy's ideal command at each time in `times` (seconds): (len(times), dim).

    Dims not listed in the trajectory table (the base velocities and the other joints) are 0."""
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    out = np.zeros((t.shape[0], dim), dtype=np.float64)
    for d, centre, amplitude, freq, phase in _TRAJECTORY:
        if d < dim:
            out[:, d] = centre + amplitude * np.sin(2.0 * np.pi * freq * t + phase)
    return out


class MockEngine(Engine):
    name = "mock"
    max_batch_size = 64

    def __init__(self, config: EngineConfig):
        if config.mock_policy not in MOCK_POLICIES:
            raise ValueError(f"mock_policy must be one of {MOCK_POLICIES}, got {config.mock_policy!r}")
        self.policy = config.mock_policy
        self.inpaints = config.mock_policy == "trajectory" and config.rtc
        self.trajectory = trajectory_at  # the `trajectory` policy's function of time (a benchmark may swap it)
        self._delay_s = max(0.0, config.mock_delay_ms) / 1000.0
        self._jitter_s = max(0.0, config.mock_jitter_ms) / 1000.0
        self._horizon = config.action_horizon
        self._random = random.Random(0)
        steps = np.arange(config.action_horizon, dtype=np.float32)
        self._decay = np.exp(-steps / 4.0)[None, :, None]  # (1, H, 1)

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        delay = self._delay_s + (self._random.uniform(-self._jitter_s, self._jitter_s) if self._jitter_s else 0.0)
        if delay > 0:
            time.sleep(delay)
        actions = self._hold(batch) if self.policy == "hold" else self._trajectory(batch)
        stages = {"inference": (time.perf_counter() - start) * 1000.0}
        return EngineOutput(actions.astype(np.float32, copy=False), stages,
                            tuple(self._rtc_report(batch, b) for b in range(batch.batch_size)))

    def _rtc_report(self, batch: ObservationBatch, row: int) -> dict:
        prefix = batch.prefixes[row] if row < len(batch.prefixes) else None
        if prefix is None or not self.inpaints:
            reason = "" if prefix is None else ("mock_policy hold ignores the prefix" if self.policy == "hold"
                                               else "rtc:=false on this server")
            return {"applied": False, "frozen_steps": 0, "overlap_steps": 0, **({"reason": reason} if reason else {})}
        frozen = min(int(prefix.delay_steps), len(prefix.actions), self._horizon)
        return {"applied": frozen > 0, "frozen_steps": frozen,
                "overlap_steps": min(self._horizon, frozen + BLEND_STEPS) if frozen else 0}

    def _hold(self, batch: ObservationBatch) -> np.ndarray:
        state = batch.state.astype(np.float32, copy=False)
        actions = np.repeat(state[:, None, :], self._horizon, axis=1)
        base = layout.BASE_DIMS
        actions[:, :, base] = state[:, None, base] * self._decay
        return actions

    def _trajectory(self, batch: ObservationBatch) -> np.ndarray:
        dim = batch.state.shape[1]
        offsets = np.arange(self._horizon) / TRAJECTORY_STEP_HZ
        chunks = []
        for b in range(batch.batch_size):
            stamp = batch.timestamps[b] if b < len(batch.timestamps) else time.time()
            chunk = self.trajectory(stamp + offsets, dim)
            prefix = batch.prefixes[b] if b < len(batch.prefixes) else None
            if prefix is not None and self.inpaints:
                chunk = _continue_prefix(chunk, prefix)
            chunks.append(chunk)
        return np.stack(chunks)


def _continue_prefix(chunk: np.ndarray, prefix) -> np.ndarray:
    """Real-time chunking, mock style: keep the frozen prefix, then blend into the fresh chunk."""
    k = min(int(prefix.delay_steps), len(prefix.actions), len(chunk))
    if k <= 0:
        return chunk
    out = chunk.copy()
    out[:k] = prefix.actions[:k]
    offset = prefix.actions[k - 1] - chunk[k - 1]
    for j in range(k, min(len(chunk), k + BLEND_STEPS)):
        out[j] += offset * (1.0 - (j - k + 1) / (BLEND_STEPS + 1))
    return out
