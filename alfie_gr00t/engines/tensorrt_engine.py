"""TensorRT backend for single-graph policies, and the plan builder behind groot_build_engine.

For a policy that is one graph (images + state -> actions, see contract.py). GR00T N1.6
is not one graph: its TensorRT path swaps only the DiT action head (trt_dit.py).
Works on TensorRT 10 and 11 (trt_api.py detects which builder API is there).

Uses the name-based tensor API (num_io_tensors / set_input_shape / set_tensor_address /
execute_async_v3). Host buffers are pinned, allocated once at the largest batch the
plan's optimisation profile accepts, and hold the engine's own dtypes (FP16 bindings
included), so a call does no allocation. The I/O contract is `contract.py`'s.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from alfie_gr00t.engines import contract, trt_api
from alfie_gr00t.engines.base import (Engine, EngineConfig, EngineError, EngineOutput, ObservationBatch,
                                     stage_split)

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 4096
DEFAULT_MAX_BATCH = 8


class PlanLoadError(EngineError):
    """The plan file exists but this TensorRT/GPU cannot deserialize it (rebuild it)."""


def import_tensorrt():
    """The tensorrt module (10.x or 11.x), or an EngineError that says what to install."""
    return trt_api.import_tensorrt()


def _np_dtype(trt, trt_dtype, name: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError as exc:
        raise EngineError(
            f"tensor '{name}' has TensorRT dtype {trt_dtype}, which this single-graph backend cannot stage "
            "(numpy has no bfloat16): keep a one-graph policy's inputs/outputs fp32/fp16/uint8/int64; "
            "BF16 engines are served through the GR00T DiT path (trt_dit.py)") from exc


def engine_specs(trt, engine) -> tuple[list[contract.TensorSpec], list[contract.TensorSpec]]:
    """The engine's declared inputs and outputs as contract TensorSpecs."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        spec = contract.TensorSpec.of(name, tuple(engine.get_tensor_shape(name)),
                                      _np_dtype(trt, engine.get_tensor_dtype(name), name))
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
    return inputs, outputs


def network_specs(trt, network) -> tuple[list[contract.TensorSpec], list[contract.TensorSpec]]:
    """A parsed network's inputs and outputs as contract TensorSpecs (before building)."""
    def spec(tensor):
        return contract.TensorSpec.of(tensor.name, tuple(tensor.shape), _np_dtype(trt, tensor.dtype, tensor.name))
    inputs = [spec(network.get_input(i)) for i in range(network.num_inputs)]
    outputs = [spec(network.get_output(i)) for i in range(network.num_outputs)]
    return inputs, outputs


def _profile_max_batch(engine, plan: contract.ContractPlan) -> int:
    """The largest batch profile 0 accepts on every input (fixed batch: that size)."""
    if plan.fixed_batch:
        return plan.fixed_batch
    return min(int(engine.get_tensor_profile_shape(name, 0)[2][0]) for name in plan.input_names)


class TensorRTEngine(Engine):
    """One plan, one execution context, one stream. Not re-entrant: the staging buffers are
    shared, so calls must come one at a time (the server runs one inference at a time)."""

    name = "tensorrt"

    def __init__(self, config: EngineConfig, plan_path: str | os.PathLike | None = None):
        from alfie_gr00t.engines import cuda_memory

        self._trt = trt = import_tensorrt()
        self._config = config
        self._path = Path(plan_path or config.model_checkpoint)
        if not self._path.is_file():
            raise EngineError(f"TensorRT plan {self._path} does not exist; build one with groot_build_engine")
        self._device = cuda_memory.CudaDevice(config.device)
        try:
            self._load(trt, config)
        except BaseException:
            self.close()
            raise
        log.info("TensorRT engine %s on %s: %s", self._path, self._device.name, self.plan.describe())

    def _load(self, trt, config: EngineConfig) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        with self._device.active():
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self._path.read_bytes())
            if self._engine is None:
                raise PlanLoadError(
                    f"TensorRT {trt.__version__} could not load {self._path}: plans only run on the TensorRT "
                    "version and GPU model they were built with; rebuild it with groot_build_engine"
                )
            inputs, outputs = engine_specs(trt, self._engine)
            self.plan = contract.check_contract(inputs, outputs, config)
            self.max_batch_size = _profile_max_batch(self._engine, self.plan)
            self._context = self._engine.create_execution_context()
            self._stream = self._device.stream()
            self._allocate(inputs, outputs)

    def _allocate(self, inputs, outputs) -> None:
        """Pinned host + device buffers per I/O tensor, sized for max_batch_size, bound once."""
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, object] = {}
        for name, shape in self.plan.input_shapes(self.max_batch_size).items():
            self._context.set_input_shape(name, shape)
        for spec in list(inputs) + list(outputs):
            shape = tuple(self._context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EngineError(f"TensorRT cannot bound the shape of '{spec.name}' ({shape}) at batch {self.max_batch_size}")
            count = int(np.prod(shape))
            self._host[spec.name] = self._device.pinned_buffer(count, spec.dtype)
            self._dev[spec.name] = self._device.device_buffer(count * spec.dtype.itemsize)
            self._context.set_tensor_address(spec.name, int(self._dev[spec.name]))

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        size = batch.batch_size
        if size > self.max_batch_size:
            raise EngineError(f"batch of {size} exceeds this plan's max batch {self.max_batch_size}")
        start = time.perf_counter()
        feeds = contract.prepare_inputs(batch, self.plan)
        staged = {}
        for name, array in feeds.items():
            staged[name] = self._host[name][: array.size].reshape(array.shape)
            staged[name][...] = array
        prepared = time.perf_counter()
        actions = self._run(staged)
        ran = time.perf_counter()
        chunk = contract.read_actions({contract.ACTIONS_OUTPUT: actions}, self.plan, self._config, size)
        done = time.perf_counter()
        return EngineOutput(chunk, stage_split(start, prepared, ran, done))

    def _run(self, staged: dict[str, np.ndarray]) -> np.ndarray:
        """H2D copies, execute_async_v3, D2H of `actions`, one sync; returns a pinned view."""
        with self._device.active():
            for name, array in staged.items():
                self._context.set_input_shape(name, array.shape)
                self._stream.to_device(self._dev[name], array)
            if not self._context.execute_async_v3(self._stream.handle):
                raise EngineError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
            shape = tuple(self._context.get_tensor_shape(contract.ACTIONS_OUTPUT))
            out = self._host[contract.ACTIONS_OUTPUT][: int(np.prod(shape))].reshape(shape)
            self._stream.to_host(out, self._dev[contract.ACTIONS_OUTPUT])
            self._stream.synchronize()
        return out

    def close(self) -> None:
        if getattr(self, "_device", None) is None:
            return
        with self._device.active():  # TensorRT objects and pinned memory go while the context is current
            self._context = self._engine = self._runtime = None
            self._host, self._dev, self._stream = {}, {}, None
        self._device.free()
        self._device = None

    def describe(self) -> dict:
        info = {"backend": "tensorrt", "tensorrt": True, "tensorrt_version": self._trt.__version__,
                "model": str(self._path), "output_dtype": self.plan.output_dtype.name,
                "max_batch_size": self.max_batch_size, "contract": self.plan.describe()}
        if self._device is not None:
            info.update(self._device.describe())
        return info


# ---------------------------------------------------------------- INT8 calibration data


def load_calibration_batches(directory: str | os.PathLike, plan: contract.ContractPlan,
                             config: EngineConfig) -> list[dict[str, np.ndarray]]:
    """Read `*.npz` observation files and return graph feeds for each (pure numpy).

    Each file holds observations as the server decodes them: one uint8 (B, H, W, 3) RGB
    array per camera name, `state` (B, action_dim), optional `language` (B,) strings.
    They go through `contract.prepare_inputs`, so the same files calibrate NHWC and NCHW
    graphs. All files must share one batch size (the calibration profile's).
    """
    files = sorted(Path(directory).glob("*.npz"))
    if not files:
        raise EngineError(f"no .npz calibration files in {directory}")
    batches, sizes = [], set()
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*config.camera_names, contract.STATE_INPUT) if k not in data.files]
            if missing:
                raise EngineError(f"calibration file {path.name} lacks {missing} (has {data.files})")
            state = np.asarray(data[contract.STATE_INPUT], dtype=np.float32)
            language = tuple(str(s) for s in data["language"]) if "language" in data.files else ("",) * len(state)
            obs = ObservationBatch({cam: np.asarray(data[cam]) for cam in config.camera_names}, state, language)
        batches.append(contract.prepare_inputs(obs, plan))
        sizes.add(obs.batch_size)
    if len(sizes) > 1:
        raise EngineError(f"calibration files hold different batch sizes {sorted(sizes)}; use one size")
    return batches


def _make_calibrator(trt, device, batches, cache_path: Path):
    """An IInt8EntropyCalibrator2 feeding `batches` (dicts of input name -> array); TensorRT 10 only."""

    class NpzCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            first = batches[0]
            self._dev = {name: device.device_buffer(arr.nbytes) for name, arr in first.items()}

        def get_batch_size(self):
            return int(next(iter(batches[0].values())).shape[0])

        def get_batch(self, names):
            if self._next >= len(batches):
                return None
            feeds = batches[self._next]
            self._next += 1
            for name in names:
                device.copy_to_device(self._dev[name], feeds[name])
            return [int(self._dev[name]) for name in names]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    return NpzCalibrator()


# ---------------------------------------------------------------- plan builder


def _add_profile(builder, plan: contract.ContractPlan, min_b: int, opt_b: int, max_b: int):
    profile = builder.create_optimization_profile()
    lo, mid, hi = plan.input_shapes(min_b), plan.input_shapes(opt_b), plan.input_shapes(max_b)
    for name in plan.input_names:
        profile.set_shape(name, lo[name], mid[name], hi[name])
    return profile, {name: [list(lo[name]), list(mid[name]), list(hi[name])] for name in plan.input_names}


def _build_serialized(trt, device, onnx_path: Path, config: EngineConfig, fp16: bool, int8: bool,
                      calibration_dir, workspace_mb: int, cache_path: Path | None, max_batch: int,
                      calib_cache: Path) -> tuple[bytes, bytes | None, dict]:
    """Parse, check and build; every TensorRT object dies here, while the context is current."""
    features = trt_api.Features.of(trt)
    if int8 and not features.int8_calibration:
        raise EngineError(f"TensorRT {trt.__version__} has no implicit INT8 calibration (removed in TensorRT 11): "
                          "quantize the ONNX with explicit Q/DQ nodes (NVIDIA ModelOpt), or build with TensorRT 10")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weak = features.weak_typing  # TensorRT 10: weak typing and its precision flags; 11: strongly typed only
    network = trt_api.create_network(trt, builder, strongly_typed=not weak)
    _parser = trt_api.parse_onnx(trt, network, logger, onnx_path)
    inputs, outputs = network_specs(trt, network)
    plan = contract.check_contract(inputs, outputs, config)
    b_min = plan.fixed_batch or 1
    b_max = plan.fixed_batch or max(1, int(max_batch))
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) * 2**20)
    profile, profile_shapes = _add_profile(builder, plan, b_min, b_min, b_max)
    cfg.add_optimization_profile(profile)
    precision = ["fp32"]
    if fp16 and weak:
        cfg.set_flag(trt.BuilderFlag.FP16)
        precision = ["fp16"]
    elif not weak:
        precision = ["as typed in the ONNX (strongly typed)"]
        if fp16:
            log.warning("TensorRT %s has no FP16 builder flag: the plan keeps the ONNX's own types; convert the "
                        "ONNX to fp16 first (NVIDIA ModelOpt AutoCast) for fp16 kernels", trt.__version__)
    calibrator = None  # must outlive build_serialized_network
    if int8:
        batches = load_calibration_batches(calibration_dir, plan, config)
        calib_b = next(iter(batches[0].values())).shape[0]
        calib_profile, _ = _add_profile(builder, plan, calib_b, calib_b, calib_b)
        calibrator = _make_calibrator(trt, device, batches, calib_cache)
        cfg.set_flag(trt.BuilderFlag.INT8)
        cfg.set_calibration_profile(calib_profile)
        cfg.int8_calibrator = calibrator
        precision.insert(0, "int8")
    cache = trt_api.load_timing_cache(cfg, cache_path)
    serialized = builder.build_serialized_network(network, cfg)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build a plan from {onnx_path} (see the TensorRT log above)")
    facts = {
        "precision": "+".join(precision),
        "inputs": {s.name: {"shape": list(s.shape), "dtype": s.dtype.name} for s in inputs},
        "outputs": {s.name: {"shape": list(s.shape), "dtype": s.dtype.name} for s in outputs},
        "profile": profile_shapes,
        "contract": plan.describe(),
    }
    return bytes(serialized), bytes(cache.serialize()) if cache_path is not None else None, facts


def build_plan(onnx_path, plan_path, fp16: bool = True, int8: bool = False, calibration_dir=None,
               workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache=None, *,
               config: EngineConfig | None = None, max_batch: int = DEFAULT_MAX_BATCH) -> dict:
    """Build a TensorRT plan from a contract-following ONNX file; return a summary dict.

    Dynamic batch dims get one profile min=1, opt=1, max=`max_batch` (real-time serving
    runs batch 1). The plan is written atomically, so a crashed build leaves no half file.
    """
    from alfie_gr00t.engines import cuda_memory

    trt = import_tensorrt()
    config = config or EngineConfig(mock_mode=False)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX file {onnx_path} does not exist")
    if int8 and not calibration_dir:
        raise EngineError("--int8 needs --calibration-data DIR (a directory of .npz observation batches)")
    cache_path = Path(timing_cache) if timing_cache else None
    started = time.perf_counter()
    device = cuda_memory.CudaDevice(config.device if config.device.startswith("cuda") else "cuda:0")
    try:
        with device.active():
            data, cache_data, facts = _build_serialized(
                trt, device, onnx_path, config, fp16, int8, calibration_dir, workspace_mb, cache_path,
                max_batch, plan_path.with_suffix(".calib"))
    finally:
        device.free()
    trt_api.write_atomically(plan_path, data)
    if cache_path is not None:
        cache_path.write_bytes(cache_data)
    return {
        "onnx": str(onnx_path),
        "plan": str(plan_path),
        "tensorrt_version": trt.__version__,
        **facts,
        "size_bytes": plan_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
        "timing_cache": str(cache_path) if cache_path else None,
    }
