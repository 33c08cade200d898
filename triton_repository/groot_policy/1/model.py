"""Triton Python-backend model serving an alfie_gr00t engine to many groot_servers.

Triton's dynamic batcher hands `execute` every request that joined one batch; they are
stacked into one ObservationBatch, run through the engine in one call (split at the
engine's own max_batch_size), and the action chunks are handed back per request.

This file runs inside the Triton environment (.venv-triton, numpy<2). It imports
alfie_gr00t from `alfie_gr00t_path` (config.pbtxt), $ALFIE_GR00T_PATH, or the source tree
it sits in; for the mock only numpy is needed. The ONNX / TensorRT / Isaac-GR00T
engines need their own packages installed in this environment and fail with an error
naming them otherwise (the model then shows as not ready, which groot_server reports).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_UINT8 = "TYPE_UINT8"


def _add_package_path(explicit: str) -> None:
    """Make `import alfie_gr00t` work; appended so this environment's numpy stays first."""
    candidates = [explicit, os.environ.get("ALFIE_GR00T_PATH", ""), str(Path(__file__).resolve().parents[3])]
    for candidate in candidates:
        if candidate and (Path(candidate) / "alfie_gr00t" / "__init__.py").is_file():
            if candidate not in sys.path:
                sys.path.append(candidate)
            return
    try:
        import alfie_gr00t  # noqa: F401  (installed into this environment)
    except ImportError as exc:
        raise RuntimeError(
            f"alfie_gr00t not found (tried {[c for c in candidates if c]}): set the alfie_gr00t_path parameter "
            "in config.pbtxt or ALFIE_GR00T_PATH to the directory that holds the alfie_gr00t package") from exc


def _rtc_rows(reports, size: int) -> np.ndarray:
    """(size, 3) int32 [applied, frozen_steps, overlap_steps] from the engine's per-row reports."""
    rows = np.zeros((size, 3), dtype=np.int32)
    for b, report in enumerate(list(reports)[:size]):
        if report:
            rows[b] = (int(bool(report.get("applied"))), int(report.get("frozen_steps", 0)),
                       int(report.get("overlap_steps", 0)))
    return rows


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


class TritonPythonModel:
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        params = {key: value.get("string_value", "") for key, value in model_config.get("parameters", {}).items()}
        _add_package_path(params.get("alfie_gr00t_path", ""))
        from alfie_gr00t.engines.base import EngineConfig
        from alfie_gr00t.engines.registry import create_engine

        inputs = model_config["input"]
        cameras = [spec for spec in inputs if spec["data_type"] == _UINT8]
        if not cameras:
            raise RuntimeError("config.pbtxt declares no TYPE_UINT8 camera input")
        height, width = (int(d) for d in cameras[0]["dims"][:2])
        output = next(spec for spec in model_config["output"] if spec["name"] == "actions")
        horizon, dim = (int(d) for d in output["dims"])
        kind = params.get("engine", "mock").strip() or "mock"
        if kind not in ("mock", "onnx", "tensorrt", "gr00t"):
            raise RuntimeError(f"parameter engine={kind!r}: expected mock, onnx, tensorrt or gr00t")
        gpu = args.get("model_instance_kind") == "GPU"
        device = f"cuda:{args.get('model_instance_device_id', '0')}" if gpu else "cpu"
        values = {
            "mock_mode": kind == "mock", "model_checkpoint": params.get("model_checkpoint", ""),
            "use_tensorrt": kind == "tensorrt" or _flag(params.get("use_tensorrt", "false")), "device": device,
            "action_horizon": horizon, "action_dim": dim, "image_width": width, "image_height": height,
            "camera_names": tuple(spec["name"] for spec in cameras), "video_keys": tuple(spec["name"] for spec in cameras),
            "embodiment_tag": params.get("embodiment_tag", "new_embodiment"),
            "denoising_steps": int(params.get("denoising_steps", "4") or 4),
            "mock_delay_ms": float(params.get("mock_delay_ms", "0") or 0.0),
        }
        known = EngineConfig.__dataclass_fields__
        for key in ("mock_policy", "mock_jitter_ms", "rtc_ramp_rate"):  # newer options, passed through when present
            if key in params and key in known:
                values[key] = type(getattr(EngineConfig(), key))(params[key])
        if "rtc" in params and "rtc" in known:
            values["rtc"] = _flag(params["rtc"])
        self.config = EngineConfig(**{k: v for k, v in values.items() if k in known})
        self.engine = create_engine(self.config)
        self.cameras = self.config.camera_names
        self.reports_rtc = any(spec["name"] == "rtc" for spec in model_config["output"])
        self.batches = 0

    def _stack(self, requests):
        from alfie_gr00t.engines.base import ChunkPrefix, ObservationBatch

        sizes, images, states, language = [], {name: [] for name in self.cameras}, [], []
        stamps, prefixes = [], []
        for request in requests:
            state = pb_utils.get_input_tensor_by_name(request, "state").as_numpy()
            sizes.append(state.shape[0])
            states.append(state.astype(np.float32, copy=False))
            for name in self.cameras:
                images[name].append(pb_utils.get_input_tensor_by_name(request, name).as_numpy())
            text = pb_utils.get_input_tensor_by_name(request, "language").as_numpy().reshape(-1)
            language.extend(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in text)
            stamps.extend(float(t) for t in pb_utils.get_input_tensor_by_name(request, "timestamp").as_numpy()
                          .reshape(-1))
            prefix = pb_utils.get_input_tensor_by_name(request, "prefix").as_numpy()
            steps = pb_utils.get_input_tensor_by_name(request, "prefix_steps").as_numpy().reshape(-1, 2)
            for actions, (length, delay) in zip(prefix, steps):
                prefixes.append(ChunkPrefix(actions[:int(length)].copy(), int(delay)) if length > 0 else None)
        batch = ObservationBatch(
            images={name: np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
                    for name, parts in images.items()},
            state=np.concatenate(states, axis=0) if len(states) > 1 else states[0],
            language=tuple(language), timestamps=tuple(stamps), prefixes=tuple(prefixes))
        return batch, sizes

    def execute(self, requests):
        from alfie_gr00t.engines.base import run_batched

        try:
            batch, sizes = self._stack(requests)
            output = run_batched(self.engine, batch)
            actions = np.ascontiguousarray(output.actions, dtype=np.float32)
            rtc = _rtc_rows(output.rtc, batch.batch_size)
            if not np.all(np.isfinite(actions)):
                raise RuntimeError("engine returned non-finite actions")
        except Exception as exc:  # every request of this batch gets the error, the model keeps serving
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        self.batches += 1
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor("actions", actions[start:start + size])]
            if self.reports_rtc:
                tensors.append(pb_utils.Tensor("rtc", rtc[start:start + size]))
            start += size
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
