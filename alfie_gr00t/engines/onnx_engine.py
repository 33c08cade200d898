"""ONNX Runtime backend for single-graph policies (the contract in `contract.py`).

Runs on the CUDA execution provider when onnxruntime-gpu provides it and `device` is
a CUDA device, else on the CPU provider -- said in the log and in `describe()`, since
the two differ a lot in speed. It is also the reference the TensorRT plan is built from.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from alfie_gr00t.engines import contract
from alfie_gr00t.engines.base import (Engine, EngineConfig, EngineError, EngineOutput, ObservationBatch,
                                     stage_split)

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(float)": np.float32,
    "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(int64)": np.int64,
    "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
}


def import_onnxruntime():
    """The onnxruntime module, or an EngineError that says what to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineError(
            f"onnxruntime is not installed ({exc}): pip install onnxruntime-gpu (CUDA) or "
            "pip install onnxruntime (CPU), or mock_mode:=true to run without a model"
        ) from exc
    return onnxruntime


def choose_providers(device: str, available: list[str]) -> list:
    """CUDA provider (on the requested GPU index) when asked for and present, else CPU."""
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = device.partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_spec(arg) -> contract.TensorSpec:
    """An onnxruntime NodeArg as a contract TensorSpec."""
    if arg.type not in _ORT_TYPES:
        raise EngineError(f"tensor '{arg.name}' has unsupported type {arg.type}")
    return contract.TensorSpec.of(arg.name, arg.shape, _ORT_TYPES[arg.type])


class OnnxEngine(Engine):
    name = "onnxruntime"

    def __init__(self, config: EngineConfig, model_path: str | os.PathLike | None = None):
        ort = import_onnxruntime()
        self._config = config
        self._path = Path(model_path or config.model_checkpoint)
        if not self._path.is_file():
            raise EngineError(f"ONNX model {self._path} does not exist")
        available = ort.get_available_providers()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self._path), sess_options=options, providers=choose_providers(config.device, available))
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise EngineError(f"ONNX Runtime could not load {self._path}: {exc}") from exc
        self.provider = self._session.get_providers()[0]
        if config.device.startswith("cuda") and self.provider != "CUDAExecutionProvider":
            log.warning("device %s requested but ONNX Runtime has no CUDA provider (available: %s); running "
                        "on CPU. pip install onnxruntime-gpu for GPU inference", config.device, available)
        inputs = [ort_spec(arg) for arg in self._session.get_inputs()]
        outputs = [ort_spec(arg) for arg in self._session.get_outputs()]
        self.plan = contract.check_contract(inputs, outputs, config)
        self.max_batch_size = self.plan.max_batch_size
        log.info("ONNX Runtime engine %s on %s: %s", self._path, self.provider, self.plan.describe())

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        feeds = contract.prepare_inputs(batch, self.plan)
        prepared = time.perf_counter()
        try:
            (actions,) = self._session.run([contract.ACTIONS_OUTPUT], feeds)
        except Exception as exc:
            raise EngineError(f"ONNX Runtime inference failed: {exc}") from exc
        ran = time.perf_counter()
        chunk = contract.read_actions({contract.ACTIONS_OUTPUT: actions}, self.plan, self._config, batch.batch_size)
        done = time.perf_counter()
        return EngineOutput(chunk, stage_split(start, prepared, ran, done))

    def close(self) -> None:
        self._session = None

    def describe(self) -> dict:
        return {"backend": "onnxruntime", "tensorrt": False, "provider": self.provider,
                "model": str(self._path), "max_batch_size": self.max_batch_size,
                "contract": self.plan.describe()}
