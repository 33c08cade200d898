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
"""

from __future__ import annotations

import logging
from pathlib import Path

from alfie_gr00t.engines import trt_api
from alfie_gr00t.engines.base import EngineError

log = logging.getLogger(__name__)

REQUIRED_INPUTS = ("sa_embs", "vl_embs", "timestep")
OPTIONAL_INPUTS = ("image_mask", "backbone_attention_mask")
OUTPUT = "output"
ENGINE_PATTERNS = ("dit*.engine", "dit*.trt", "dit*.plan")


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise EngineError(f"torch is not installed ({exc}): the GR00T TensorRT DiT runs inside Isaac-GR00T's "
                          "PyTorch policy; install torch with CUDA and Isaac-GR00T") from exc
    return torch


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
    """The DiT engine: `explicit` when given, else the one `dit*.engine|.trt|.plan` beside the checkpoint."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EngineError(f"tensorrt_engine_path {path} does not exist: build it with "
                              "groot_build_engine <dit_model.onnx> (README: From a fine-tuned checkpoint to the robot)")
        return path
    found = sorted({p for pattern in ENGINE_PATTERNS for p in checkpoint.glob(pattern)})
    if len(found) == 1:
        return found[0]
    if not found:
        raise EngineError(
            f"use_tensorrt is set but no DiT engine is beside {checkpoint} (looked for {', '.join(ENGINE_PATTERNS)}) "
            "and tensorrt_engine_path is empty: export the DiT with Isaac-GR00T's export_onnx_n1d6.py, build it with "
            "groot_build_engine dit_model.onnx -o <checkpoint>/dit_model_fp16.engine, or set use_tensorrt:=false")
    raise EngineError(f"several DiT engines beside {checkpoint}: {[p.name for p in found]}; "
                      "choose one with tensorrt_engine_path")


class DiTEngine:
    """A TensorRT DiT engine called with torch CUDA tensors, on torch's current stream.

    Not re-entrant (one execution context, one reused output buffer): calls come one at
    a time, as the policy's denoising loop makes them.
    """

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


def make_dit_forward(engine: DiTEngine):
    """A replacement for the DiT module's forward, with upstream `AlternateVLDiT.forward`'s signature
    (gr00t/model/modules/dit.py). `encoder_attention_mask` is unused by the inference loop;
    `kv_cache` (newer Isaac-GR00T threads one through the loop) has no meaning for an engine."""

    def forward(hidden_states, encoder_hidden_states, timestep=None, encoder_attention_mask=None,
                return_all_hidden_states=False, image_mask=None, backbone_attention_mask=None, kv_cache=None):
        if return_all_hidden_states:
            raise EngineError("the TensorRT DiT returns only the final output (return_all_hidden_states=True asked)")
        out = engine(hidden_states, encoder_hidden_states, timestep,
                     image_mask=image_mask, backbone_attention_mask=backbone_attention_mask)
        # a fresh tensor in the dtype the PyTorch DiT produced: the engine reuses its buffer next step
        return out.to(hidden_states.dtype) if out.dtype != hidden_states.dtype else out.clone()

    forward.tensorrt_engine = engine
    return forward


def accumulate_in_fp32(action_head) -> None:
    """Run the flow-matching Euler update in FP32 without touching the upstream loop.

    The decoder's velocity comes back as FP32, so `actions + dt * velocity` promotes the
    running actions to FP32; the encoder gets them back in its own dtype.
    """
    encoder, decoder = action_head.action_encoder, action_head.action_decoder
    encode, decode = encoder.forward, decoder.forward
    weight_dtype = next(iter(encoder.parameters())).dtype

    def encoder_forward(actions, *args, **kwargs):
        return encode(actions.to(weight_dtype), *args, **kwargs)

    def decoder_forward(*args, **kwargs):
        return decode(*args, **kwargs).float()

    encoder.forward, decoder.forward = encoder_forward, decoder_forward


def install_dit_engine(policy, engine: DiTEngine, *, fp32_accumulation: bool | None = None) -> dict:
    """Swap `policy.model.action_head.model.forward` for the engine; returns what was done.

    `fp32_accumulation` None means: on whenever the engine's output is not bf16.
    """
    head = getattr(getattr(policy, "model", None), "action_head", None)
    dit = getattr(head, "model", None)
    if dit is None:
        raise EngineError("this Gr00tPolicy has no model.action_head.model (the DiT): not a GR00T N1.6 policy?")
    dit.forward = make_dit_forward(engine)
    if fp32_accumulation is None:
        fp32_accumulation = engine.output_dtype != engine._torch.bfloat16
    if fp32_accumulation:
        accumulate_in_fp32(head)
    log.info("DiT forward served by TensorRT engine %s (output %s, FP32 Euler accumulation %s)",
             engine.path, engine.output_dtype, "on" if fp32_accumulation else "off")
    return {**engine.describe(), "fp32_accumulation": bool(fp32_accumulation)}


def free_pytorch_dit(policy, torch) -> None:
    """Drop the PyTorch DiT weights once TensorRT serves it (GPU memory matters on Orin)."""
    for param in policy.model.action_head.model.parameters():
        param.data = param.data.new_empty(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
