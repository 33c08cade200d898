"""GR00T N1.6 the way NVIDIA deploys it: only the DiT action head runs in TensorRT.

Isaac-GR00T's `scripts/deployment/export_onnx_n1d6.py` exports the DiT
(`policy.model.action_head.model`) as `dit_model.onnx` with inputs `sa_embs`, `vl_embs`,
`timestep` and optional `image_mask`, `backbone_attention_mask`, output `output`. At run
time the engine replaces that module's `forward`; the backbone, the action encoder and
decoder and the denoising loop stay in PyTorch (bf16).

Differences from the upstream script, on purpose:
* the output buffer has the engine's own output dtype (fp32/fp16/bf16), not always bf16,
  and is handed back in the dtype the PyTorch DiT would have produced;
* with an engine whose output is not bf16 (an FP16 DiT on Orin) the Euler update runs in
  FP32 (`accumulate_in_fp32`), which a deployment of this robot needed on AGX Orin;
* an engine built for another TensorRT or GPU is refused with the reason (sidecar).

The swap itself (make_dit_forward, accumulate_in_fp32, install_dit_engine) is shared with
the ONNX Runtime DiT (ort_dit.py) and lives in dit_swap.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alfie_gr00t.engines import trt_api
from alfie_gr00t.engines.base import EngineError
# the backend-neutral swap lives in dit_swap; these names stay importable from here
from alfie_gr00t.engines.dit_swap import (ENGINE_PATTERNS, OPTIONAL_INPUTS, OUTPUT, REQUIRED_INPUTS,  # noqa: F401
                                          _existing, accumulate_in_fp32, check_dit_io, dtype_name, find_beside,
                                          free_pytorch_dit, import_torch, install_dit_engine, make_dit_forward)

log = logging.getLogger(__name__)


def cuda_index(device: str) -> int:
    from alfie_gr00t.engines.cuda_memory import device_index

    return device_index(device)


def gpu_facts(torch, device: str) -> tuple[str, tuple[int, int]]:
    """(GPU name, compute capability) of `device`, or an EngineError when there is no GPU."""
    index = cuda_index(device)
    if not torch.cuda.is_available():
        raise EngineError(f"device '{device}' requested but torch sees no CUDA GPU: the TensorRT DiT needs an "
                          "NVIDIA GPU (check nvidia-smi and that torch is a CUDA build)")
    if index >= torch.cuda.device_count():
        raise EngineError(f"device '{device}' requested but torch sees {torch.cuda.device_count()} GPU(s)")
    return torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index))


def find_dit_engine(checkpoint: Path, explicit: str = "") -> Path:
    """The TensorRT DiT engine: `explicit` when given, else the one `dit*.engine|.trt|.plan` beside the checkpoint."""
    if explicit:
        return _existing(explicit, "tensorrt_engine_path")
    return find_beside(checkpoint)


class DiTEngine:
    """A TensorRT DiT engine called with torch CUDA tensors, on torch's current stream.

    Not re-entrant (one execution context, one reused output buffer): calls come one at
    a time, as the policy's denoising loop makes them.
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str = "cuda:0", *, trt=None, torch=None):
        self._torch = torch = torch or import_torch()
        self._trt = trt = trt or trt_api.import_tensorrt()
        self.path = Path(path)
        self.device = f"cuda:{cuda_index(device)}"
        self.gpu, self.capability = gpu_facts(torch, self.device)
        if not self.path.is_file():
            raise EngineError(f"DiT engine {self.path} does not exist")
        trt_api.check_sidecar(self.path, str(trt.__version__), self.gpu, self.capability)
        torch.cuda.set_device(self.device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise EngineError(
                f"TensorRT {trt.__version__} could not load {self.path} on {self.gpu}: an engine only loads on the "
                "TensorRT version and GPU model that built it (or the file is not an engine); rebuild it here with "
                "groot_build_engine <dit_model.onnx>")
        self.dtypes = self._io_dtypes()
        self.output_dtype = self.dtypes[OUTPUT]
        self.max_batch = self._profile_max_batch()
        self.precision = (trt_api.read_sidecar(self.path) or {}).get("precision", "unknown")
        self._context = self._engine.create_execution_context()
        self._out = None

    def _io_dtypes(self) -> dict:
        trt, torch = self._trt, self._torch
        dtypes, inputs = {}, []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtypes[name] = getattr(torch, trt_api.dtype_name(self._engine.get_tensor_dtype(name)))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs.append(name)
        missing = [n for n in REQUIRED_INPUTS if n not in inputs] + ([OUTPUT] if OUTPUT not in dtypes else [])
        unknown = [n for n in inputs if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
        if missing or unknown:
            raise EngineError(f"{self.path} is not a GR00T N1.6 DiT engine: missing {missing}, unexpected inputs "
                              f"{unknown} (expected {list(REQUIRED_INPUTS + OPTIONAL_INPUTS)} -> '{OUTPUT}')")
        self.inputs = tuple(inputs)
        return dtypes

    def _profile_max_batch(self) -> int:
        """The largest batch every input accepts (profile 0; a fixed batch is that size)."""
        sizes = []
        for name in self.inputs:
            first = int(self._engine.get_tensor_shape(name)[0])
            sizes.append(first if first >= 0 else int(self._engine.get_tensor_profile_shape(name, 0)[2][0]))
        return max(1, min(sizes))

    def __call__(self, sa_embs, vl_embs, timestep, image_mask=None, backbone_attention_mask=None):
        given = {"sa_embs": sa_embs, "vl_embs": vl_embs, "timestep": timestep,
                 "image_mask": image_mask, "backbone_attention_mask": backbone_attention_mask}
        context, staged = self._context, []
        for name in self.inputs:
            if given[name] is None:
                raise EngineError(f"the DiT engine takes '{name}' but the policy passed none: the engine was exported "
                                  "from a model with another DiT variant; re-export it from this checkpoint")
            tensor = given[name].to(device=self.device, dtype=self.dtypes[name]).contiguous()
            staged.append(tensor)  # alive until enqueued; the caching allocator orders reuse on this stream
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise EngineError(f"DiT input '{name}' {tuple(tensor.shape)} is outside the engine's profile (batch "
                                  f"1..{self.max_batch}): rebuild with groot_build_engine --max-batch / --vl-max")
            context.set_tensor_address(name, tensor.data_ptr())
        shape = tuple(context.get_tensor_shape(OUTPUT))
        if any(d < 0 for d in shape):
            raise EngineError(f"DiT output shape {shape} is unresolved: input shapes outside the engine's profile")
        if self._out is None or tuple(self._out.shape) != shape:
            self._out = self._torch.empty(shape, dtype=self.output_dtype, device=self.device)
        context.set_tensor_address(OUTPUT, self._out.data_ptr())
        if not context.execute_async_v3(self._torch.cuda.current_stream(self.device).cuda_stream):
            raise EngineError("TensorRT execute_async_v3 failed for the DiT (see the TensorRT log above)")
        return self._out

    def describe(self) -> dict:
        return {"dit_engine": str(self.path), "dit_precision": self.precision,
                "dit_output_dtype": str(self.output_dtype).replace("torch.", ""),
                "dit_max_batch": self.max_batch, "tensorrt_version": str(self._trt.__version__), "gpu": self.gpu}
