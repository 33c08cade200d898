"""The inference-engine interface every backend implements.

An engine turns a batch of decoded observations into action chunks. It never sees
wire formats: the server decodes requests (either protocol) into an
`ObservationBatch` first, so backends stay small and testable.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.wire.observation import ChunkPrefix, ObservationBatch  # noqa: F401 - re-exported for engines


class EngineError(RuntimeError):
    """A backend failed to load or to run; the message says what to install or fix."""


@dataclass(frozen=True)
class EngineConfig:
    """What a backend needs to load itself (built from the server's parameters)."""

    mock_mode: bool = True
    model_checkpoint: str = ""
    use_tensorrt: bool = False
    device: str = "cuda:0"
    action_horizon: int = layout.ACTION_HORIZON
    action_dim: int = layout.ACTION_DIM
    image_width: int = layout.IMAGE_WIDTH
    image_height: int = layout.IMAGE_HEIGHT
    camera_names: tuple[str, ...] = layout.CAMERA_NAMES
    embodiment_tag: str = "new_embodiment"
    denoising_steps: int = 4
    rtc: bool = True  # real-time chunking: inpaint a request's action prefix (engines/rtc.py, docs/rtc.md)
    rtc_ramp_rate: float = 1.0  # soft-mask decay over the prefix after its frozen steps (1 = the RTC paper's)
    mock_delay_ms: float = 0.0
    mock_jitter_ms: float = 0.0
    mock_policy: str = "hold"  # hold | trajectory (see engines/mock.py)
    tensorrt_engine_path: str = ""  # GR00T DiT engine; "" = the one beside the checkpoint
    dit_engine_path: str = ""  # GR00T DiT file: .engine/.plan/.trt TensorRT, .onnx ONNX Runtime; "" = see dit_swap.py
    # Isaac-GR00T modality mapping: video key per camera, state/action key per layout group.
    video_keys: tuple[str, ...] = layout.CAMERA_NAMES
    state_groups: tuple[layout.LayoutGroup, ...] = layout.LAYOUT_GROUPS
    language_key: str = "task"
    # engine:=triton (or model_checkpoint triton://host:port/model[/version]): engines/triton_engine.py
    engine: str = "auto"  # auto | triton
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "groot_policy"
    triton_model_version: str = ""  # "" = the version Triton's policy serves
    triton_timeout_ms: float = 1000.0


@dataclass(frozen=True)
class EngineOutput:
    """Action chunks (B, horizon, dim) float32, the engine's own stage timings in ms and, per row, what
    real-time chunking did with the request's prefix (`rtc`: a dict each, or empty when not reported)."""

    actions: np.ndarray
    stages_ms: dict[str, float] = field(default_factory=dict)
    rtc: tuple = ()


class Engine(ABC):
    """A loaded policy. `max_batch_size` > 1 means a whole batch runs as one call."""

    name: str = "engine"
    max_batch_size: int = 1
    inpaints: bool = False  # honours a request's action prefix (real-time chunking; docs/rtc.md)

    @abstractmethod
    def infer(self, batch: ObservationBatch) -> EngineOutput:
        """Run the policy on a batch of at most `max_batch_size` observations."""

    def close(self) -> None:
        """Release device memory and handles."""

    def describe(self) -> dict:
        """Extra facts for the server status (device, precision, ...)."""
        return {}


def stage_split(start: float, prepared: float, ran: float, done: float) -> dict[str, float]:
    """perf_counter marks -> the preprocess / inference / postprocess split in ms."""
    return {"preprocess": (prepared - start) * 1000.0, "inference": (ran - prepared) * 1000.0,
            "postprocess": (done - ran) * 1000.0}


def run_batched(engine: Engine, batch: ObservationBatch) -> EngineOutput:
    """Run a batch of any size, split into `engine.max_batch_size` pieces when needed."""
    size = batch.batch_size
    step = max(1, engine.max_batch_size)
    if size <= step:
        return engine.infer(batch)
    outputs, stages, rtc = [], {}, []
    for start in range(0, size, step):
        piece = ObservationBatch(
            images={k: v[start:start + step] for k, v in batch.images.items()},
            state=batch.state[start:start + step],
            language=batch.language[start:start + step],
            timestamps=batch.timestamps[start:start + step],
            prefixes=batch.prefixes[start:start + step],
        )
        out = engine.infer(piece)
        outputs.append(out.actions)
        rtc.extend(out.rtc or [{}] * piece.batch_size)
        for key, ms in out.stages_ms.items():
            stages[key] = stages.get(key, 0.0) + ms
    return EngineOutput(np.concatenate(outputs, axis=0), stages, tuple(rtc))


def dummy_batch(config: EngineConfig, batch_size: int = 1) -> ObservationBatch:
    """A grey-image, zero-state batch for warm-up runs."""
    shape = (batch_size, config.image_height, config.image_width, 3)
    return ObservationBatch(
        images={name: np.full(shape, 128, dtype=np.uint8) for name in config.camera_names},
        state=np.zeros((batch_size, config.action_dim), dtype=np.float32),
        language=("warm up",) * batch_size,
    )


def warm_up(engine: Engine, config: EngineConfig, runs: int) -> list[float]:
    """Run the engine `runs` times on a dummy batch; return each run's wall time in ms."""
    batch = dummy_batch(config)
    times = []
    for _ in range(max(0, runs)):
        start = time.perf_counter()
        engine.infer(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    return times
