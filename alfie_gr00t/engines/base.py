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
from alfie_gr00t.settings import check_choices, param, require
from alfie_gr00t.wire.observation import ChunkPrefix, ObservationBatch  # noqa: F401 - re-exported for engines


class EngineError(RuntimeError):
    """A backend failed to load or to run; the message says what to install or fix."""


MOCK_POLICIES = ("hold", "trajectory")  # what the mock engine can answer (engines/mock.py)


@dataclass(frozen=True)
class EngineSettings:
    """The server parameters an engine reads, each declared once (settings.param: default, meaning,
    choices). ServerConfig adds the server's own parameters; EngineConfig adds the layout's groups."""

    mock_mode: bool = param(False, "serve the mock engine (hold position, no GPU)")
    model_checkpoint: str = param("", "`.engine`/`.plan` (TensorRT), `.onnx` (ONNX Runtime), or an Isaac-GR00T "
                                      "checkpoint directory")
    use_tensorrt: bool = param(False, "`.onnx`: build and use an FP16 TensorRT plan; Isaac-GR00T checkpoint: run "
                                      "its DiT in a TensorRT engine")
    device: str = param("cuda:0", "`cuda:0`, `cuda:1`, `cpu` (an Isaac-GR00T checkpoint on CPU: seconds per "
                                  "chunk, [checkpoint.md](checkpoint.md#trying-a-checkpoint-on-cpu))")
    action_horizon: int = param(layout.ACTION_HORIZON, "steps per chunk")
    action_dim: int = param(layout.ACTION_DIM, "values per step")
    image_width: int = param(layout.IMAGE_WIDTH, "model input width")
    image_height: int = param(layout.IMAGE_HEIGHT, "model input height")
    camera_names: tuple[str, ...] = param(layout.CAMERA_NAMES, "image keys of a request")
    embodiment_tag: str = param("new_embodiment", "Isaac-GR00T embodiment tag the checkpoint was fine-tuned for "
                                                  "(its `statistics.json` must have it)")
    denoising_steps: int = param(4, "Isaac-GR00T flow-matching steps (fewer = faster)")
    rtc: bool = param(True, "real-time chunking: an Isaac-GR00T checkpoint inpaints a request's `action_prefix` "
                            "inside its denoising loop (first `prefix_delay_steps` frozen, the rest of the prefix "
                            "soft), on every DiT backend; `false` ignores prefixes. The ping reply says which "
                            "([rtc.md](rtc.md))")
    rtc_ramp_rate: float = param(1.0, "bends the prefix's weight after the frozen steps, the raised cosine "
                                      "(1 − cos(π·c^r))/2 ([rtc.md](rtc.md#the-schedule-and-why)); larger lets go "
                                      "of the prefix sooner. In (0, 50)")
    mock_delay_ms: float = param(0.0, "mock inference time (ms): 170–550 is Jetson Orin, 35–150 a desktop GPU")
    mock_jitter_ms: float = param(0.0, "uniform ± jitter on `mock_delay_ms`")
    mock_policy: str = param("hold", "`hold`: joints hold the state, base velocities decay as `state·exp(−i/4)`; "
                                     "`trajectory`: slow sinusoids on six joints, a known function of the "
                                     "observation's timestamp (measures tracking), honours the chunk prefix",
                                     MOCK_POLICIES)
    tensorrt_engine_path: str = param("", "GR00T DiT engine; empty: the one `dit*.engine`/`.trt`/`.plan` beside "
                                          "the checkpoint")
    dit_engine_path: str = param("", "GR00T DiT file served in place of the PyTorch DiT; its suffix picks the "
                                     "backend: `.engine`/`.plan`/`.trt` TensorRT (GPU), `.onnx` ONNX Runtime "
                                     "(also `device:=cpu`). Empty: `use_tensorrt:=true` takes the one "
                                     "`dit*.engine`/`.trt`/`.plan` beside the checkpoint, else the DiT runs in "
                                     "PyTorch (a `dit*.onnx` beside a checkpoint is never picked up unasked). See "
                                     "[checkpoint.md](checkpoint.md)")
    video_keys: tuple[str, ...] = param(
        layout.CAMERA_NAMES, "Isaac-GR00T video key per camera; equal to `camera_names` (the default) = each "
        "camera feeds the checkpoint's key of its own name. Anything else must name exactly the checkpoint's keys "
        "([checkpoint.md](checkpoint.md#your-checkpoint-decides-the-layout))")
    language_key: str = param("task", "Isaac-GR00T language key; the default `task` adopts the checkpoint's own "
                                      "(`annotation.human.task_description`, ...), any other value must equal it")
    engine: str = param("auto", "`auto` (from `mock_mode`/`model_checkpoint`) or `triton` (the GPU pool, "
                                "[triton.md](triton.md))", ("auto", "triton"))
    triton_url: str = param("127.0.0.1:8001", "Triton gRPC `host:port` (`grpcs://` for TLS)")
    triton_model: str = param("groot_policy", "model name in the Triton repository")
    triton_model_version: str = param("", "model version; empty = Triton's latest")
    triton_timeout_ms: float = param(1000.0, "deadline of each Triton request")

    def __post_init__(self):
        check_choices(self)
        require(self.triton_timeout_ms > 0, f"triton_timeout_ms must be positive, got {self.triton_timeout_ms}")
        require(0 < self.rtc_ramp_rate < 50, f"rtc_ramp_rate must be in (0, 50), got {self.rtc_ramp_rate}")
        require(self.mock_delay_ms >= 0 and self.mock_jitter_ms >= 0, "mock_delay_ms and mock_jitter_ms must be >= 0")


@dataclass(frozen=True)
class EngineConfig(EngineSettings):
    """What a backend needs to load itself: the engine settings and the layout as groups (the server builds
    it with ServerConfig.engine_config; tests and tools construct it directly)."""

    state_groups: tuple[layout.LayoutGroup, ...] = layout.LAYOUT_GROUPS  # state/action key per layout group


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
