"""GR00T N1.6's DiT served by ONNX Runtime: the same swap as the TensorRT DiT, on any machine.

`dit_engine_path:=<checkpoint>/dit_model_fp32.onnx` puts an exported DiT (the inputs and
output of Isaac-GR00T's `export_onnx_n1d6.py`) in place of the PyTorch DiT; it runs on
ONNX Runtime's CPU provider with `device:=cpu`, and on its TensorRT / CUDA execution
providers when onnxruntime-gpu has them and the device is a CUDA one.

Types come from the ONNX model's declared input/output types, read by TensorProto enum
(not via numpy: onnx < 1.19 maps bfloat16 to float32). Inputs are cast to those types;
the output comes back as a torch tensor on the caller's device. A bf16 ONNX is refused:
ONNX Runtime's CPU provider has no bf16 Gemm, and its Python API has no bf16 numpy type
to feed any provider; export the DiT in fp32 for ONNX Runtime, or build a TensorRT engine
from the bf16 ONNX (groot_build_engine).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alfie_gr00t.engines.base import EngineError
from alfie_gr00t.engines.dit_swap import OUTPUT, check_dit_io, dtype_name, import_torch

log = logging.getLogger(__name__)

# onnx.TensorProto.DataType values -> torch dtype names (the subset a DiT uses)
ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
              11: "float64", 16: "bfloat16"}
BFLOAT16 = 16
DYNAMIC_MAX_BATCH = 64  # a dynamic batch axis: ONNX Runtime takes any size; the server batches at most this
FP32_EXPORT_HINT = ("export the DiT in fp32 instead: GR00T_ONNX_EXPORTER_MODE=legacy and Isaac-GR00T's "
                    "export_dit_to_onnx(policy, captured_inputs, 'dit_model_fp32.onnx', use_bf16=False) from "
                    "scripts/deployment/export_onnx_n1d6.py (docs/checkpoint.md), or build a TensorRT engine from "
                    "the bf16 ONNX with groot_build_engine and run it on a GPU")


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineError(f"onnxruntime is not installed ({exc}): pip install onnxruntime (CPU) or "
                          "onnxruntime-gpu (CUDA/TensorRT execution providers)") from exc
    return onnxruntime


def declared_io(path: Path) -> tuple[dict, dict]:
    """({input: (TensorProto type, dims)}, {output: ...}) as the ONNX model declares them, weights not loaded."""
    try:
        import onnx
    except ImportError as exc:
        raise EngineError(f"onnx is not installed ({exc}): pip install onnx (reads the DiT's declared types)") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EngineError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from exc
    weights = {init.name for init in model.graph.initializer}

    def describe(value):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return int(tensor.elem_type), dims

    inputs = {v.name: describe(v) for v in model.graph.input if v.name not in weights}
    outputs = {v.name: describe(v) for v in model.graph.output}
    return inputs, outputs


def choose_dit_providers(device: str, available) -> list:
    """TensorRT, then CUDA execution provider on a CUDA device when onnxruntime has them; CPU always last."""
    providers = []
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            if name in available:
                providers.append((name, {"device_id": index}))
        if not providers:
            log.warning("device %s asked for but onnxruntime has no CUDA/TensorRT execution provider (has %s): "
                        "the ONNX DiT runs on the CPU (pip install onnxruntime-gpu)", device, list(available))
    return providers + ["CPUExecutionProvider"]


def provider_names(providers) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


class OrtDiT:
    """An exported N1.6 DiT run by ONNX Runtime, called with torch tensors (trt_dit.DiTEngine's surface)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", *, ort=None, torch=None, providers=None):
        self._torch = torch = torch or import_torch()
        self._ort = ort = ort or import_onnxruntime()
        self.path = Path(path)
        self.device = device
        if not self.path.is_file():
            raise EngineError(f"ONNX DiT {self.path} does not exist")
        inputs, outputs = declared_io(self.path)
        check_dit_io(self.path, list(inputs), list(outputs))
        unknown = {n: t for n, (t, _) in {**inputs, **outputs}.items() if t not in ONNX_TYPES}
        if unknown:
            raise EngineError(f"{self.path}: tensors of unsupported ONNX types {unknown} (TensorProto enum)")
        requested = providers or choose_dit_providers(device, ort.get_available_providers())
        bf16 = sorted(n for n, (t, _) in {**inputs, **outputs}.items() if t == BFLOAT16)
        if bf16:
            where = ("ONNX Runtime's CPU provider has no bf16 Gemm" if provider_names(requested) == ["CPUExecutionProvider"]
                     else "ONNX Runtime's Python API has no bf16 type to feed it")
            raise EngineError(f"{self.path.name} is a bf16 ONNX ({', '.join(bf16)} bfloat16) and {where}: "
                              + FP32_EXPORT_HINT)
        self.dtypes = {name: getattr(torch, ONNX_TYPES[t]) for name, (t, _) in {**inputs, **outputs}.items()}
        self.output_dtype = self.dtypes[OUTPUT]
        self.inputs = tuple(inputs)
        self.precision = dtype_name(self.dtypes["sa_embs"]).replace("float", "fp")
        first = [dims[0] if dims else 1 for _, dims in inputs.values()]
        fixed = [d for d in first if d > 0]
        self.max_batch = min(fixed) if fixed else DYNAMIC_MAX_BATCH
        options = ort.SessionOptions()
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=requested)
        except Exception as exc:
            raise EngineError(f"ONNX Runtime could not load {self.path}: {type(exc).__name__}: {exc}") from exc
        self.providers = list(self._session.get_providers())
        log.info("ONNX DiT %s (%s) on %s", self.path, self.precision, self.providers)

    def __call__(self, sa_embs, vl_embs, timestep, image_mask=None, backbone_attention_mask=None):
        given = {"sa_embs": sa_embs, "vl_embs": vl_embs, "timestep": timestep,
                 "image_mask": image_mask, "backbone_attention_mask": backbone_attention_mask}
        feeds = {}
        for name in self.inputs:
            if given[name] is None:
                raise EngineError(f"the ONNX DiT takes '{name}' but the policy passed none: it was exported from a "
                                  "model with another DiT variant; re-export it from this checkpoint")
            tensor = given[name].detach().to(device="cpu", dtype=self.dtypes[name]).contiguous()
            feeds[name] = tensor.numpy()
        try:
            out = self._session.run([OUTPUT], feeds)[0]
        except Exception as exc:
            shapes = {n: tuple(a.shape) for n, a in feeds.items()}
            raise EngineError(f"ONNX Runtime failed to run the DiT {self.path.name} on {shapes}: "
                              f"{type(exc).__name__}: {exc}") from exc
        return self._torch.from_numpy(out).to(sa_embs.device)

    def describe(self) -> dict:
        return {"dit_engine": str(self.path), "dit_precision": self.precision,
                "dit_output_dtype": dtype_name(self.output_dtype), "dit_max_batch": self.max_batch,
                "onnxruntime_version": str(self._ort.__version__), "onnxruntime_providers": self.providers}
