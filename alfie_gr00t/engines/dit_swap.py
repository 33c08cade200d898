"""Serve GR00T N1.6's DiT from an engine file, whatever runs it (TensorRT or ONNX Runtime).

NVIDIA deploys N1.6 by replacing `policy.model.action_head.model.forward` (the DiT) with
an engine; the backbone, the action encoder/decoder and the flow-matching loop stay in
PyTorch. Upstream's `scripts/deployment/export_onnx_n1d6.py` names the DiT's inputs
`sa_embs`, `vl_embs`, `timestep` and optional `image_mask`, `backbone_attention_mask`,
and its output `output`. Two backends implement that surface: `trt_dit.DiTEngine`
(a TensorRT engine) and `ort_dit.OrtDiT` (ONNX Runtime, also on a CPU).

A DiT backend is any object with `__call__(sa_embs, vl_embs, timestep, image_mask=None,
backbone_attention_mask=None)` taking and returning torch tensors, `output_dtype`,
`max_batch`, `inputs`, `path`, `backend` and `describe()`.

Which file serves the DiT (`select_dit_file`):
* `dit_engine_path` set: that file; its suffix picks the backend (.engine/.plan/.trt ->
  TensorRT, .onnx -> ONNX Runtime), whatever use_tensorrt says;
* else `tensorrt_engine_path` set: that TensorRT engine (as before);
* else `use_tensorrt:=true`: the one `dit*.engine|.plan|.trt` beside the checkpoint;
* else none: the DiT runs in eager PyTorch. A `dit*.onnx` beside a checkpoint is never
  picked up on its own (it is usually the input of groot_build_engine).

Real-time chunking (rtc.py) wraps the same action encoder and decoder, on top of this swap,
so it acts around whichever DiT runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alfie_gr00t.engines.base import EngineError

log = logging.getLogger(__name__)

REQUIRED_INPUTS = ("sa_embs", "vl_embs", "timestep")
OPTIONAL_INPUTS = ("image_mask", "backbone_attention_mask")
OUTPUT = "output"
TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)
ENGINE_PATTERNS = tuple(f"dit*{suffix}" for suffix in (".engine", ".trt", ".plan"))


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise EngineError(f"torch is not installed ({exc}): the GR00T DiT engine runs inside Isaac-GR00T's "
                          "PyTorch policy; install torch (with CUDA for TensorRT) and Isaac-GR00T") from exc
    return torch


def dtype_name(dtype) -> str:
    """'bfloat16' for torch.bfloat16 (or for the string a test double uses)."""
    return str(dtype).replace("torch.", "")


def check_dit_io(path, inputs, outputs) -> None:
    """EngineError unless `inputs`/`outputs` (names) are the N1.6 DiT's."""
    missing = [n for n in REQUIRED_INPUTS if n not in inputs] + ([OUTPUT] if OUTPUT not in outputs else [])
    unknown = [n for n in inputs if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
    if missing or unknown:
        raise EngineError(f"{path} is not a GR00T N1.6 DiT: missing {missing}, unexpected inputs {unknown} "
                          f"(expected {list(REQUIRED_INPUTS + OPTIONAL_INPUTS)} -> '{OUTPUT}', export_onnx_n1d6.py or "
                          "N1.7's export_onnx_n1d7.py --export-mode dit_only)")


def backend_of(path: Path) -> str:
    """'tensorrt' or 'onnxruntime' from the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in TENSORRT_SUFFIXES:
        return "tensorrt"
    if suffix in ONNX_SUFFIXES:
        return "onnxruntime"
    raise EngineError(f"DiT file {path}: unknown suffix '{suffix}'; a TensorRT engine ends in "
                      f"{'/'.join(TENSORRT_SUFFIXES)}, an ONNX DiT (ONNX Runtime) in .onnx")


def _existing(path_text: str, parameter: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise EngineError(f"{parameter} {path} does not exist: export the DiT with Isaac-GR00T's "
                          "export_onnx_n1d6.py (N1.7: export_onnx_n1d7.py), build an engine with groot_build_engine "
                          "<dit_model.onnx> "
                          "(docs/checkpoint.md)")
    return path


def find_beside(checkpoint: Path) -> Path:
    """The one TensorRT DiT engine `dit*.engine|.trt|.plan` beside the checkpoint."""
    found = sorted({p for pattern in ENGINE_PATTERNS for p in Path(checkpoint).glob(pattern)})
    if len(found) == 1:
        return found[0]
    if not found:
        raise EngineError(
            f"use_tensorrt is set but no DiT engine is beside {checkpoint} (looked for {', '.join(ENGINE_PATTERNS)}) "
            "and tensorrt_engine_path is empty: export the DiT with Isaac-GR00T's export_onnx_n1d6.py "
            "(N1.7: export_onnx_n1d7.py), build it with "
            "groot_build_engine dit_model.onnx -o <checkpoint>/dit_model_fp16.engine, or set use_tensorrt:=false "
            "(an ONNX DiT runs with dit_engine_path:=<dit_model_fp32.onnx>)")
    raise EngineError(f"several DiT engines beside {checkpoint}: {[p.name for p in found]}; "
                      "choose one with tensorrt_engine_path or dit_engine_path")


def select_dit_file(checkpoint: Path, *, dit_engine_path: str = "", tensorrt_engine_path: str = "",
                    use_tensorrt: bool = False) -> tuple[Path, str] | None:
    """(file, backend) that serves the DiT, or None for eager PyTorch (rules in the module doc)."""
    if dit_engine_path and tensorrt_engine_path and \
            Path(dit_engine_path).expanduser() != Path(tensorrt_engine_path).expanduser():
        raise EngineError(f"dit_engine_path {dit_engine_path} and tensorrt_engine_path {tensorrt_engine_path} "
                          "name different DiT files: set only dit_engine_path")
    if dit_engine_path:
        backend = backend_of(Path(dit_engine_path))
        path = _existing(dit_engine_path, "dit_engine_path")
        if use_tensorrt and backend != "tensorrt":
            log.warning("use_tensorrt is set but dit_engine_path %s is an ONNX DiT: ONNX Runtime serves it", path)
        return path, backend
    if tensorrt_engine_path:
        path = _existing(tensorrt_engine_path, "tensorrt_engine_path")
        if backend_of(path) != "tensorrt":
            raise EngineError(f"tensorrt_engine_path {path} is not a TensorRT engine (.engine/.plan/.trt): "
                              "an ONNX DiT goes in dit_engine_path")
        return path, "tensorrt"
    if use_tensorrt:
        return find_beside(Path(checkpoint)), "tensorrt"
    return None


def make_dit_forward(engine):
    """A replacement for the DiT module's forward, with upstream `AlternateVLDiT.forward`'s signature
    (gr00t/model/modules/dit.py); `DiT.forward` takes the same first three. `encoder_attention_mask`
    is unused by the inference loop; `kv_cache` (newer Isaac-GR00T threads one through the loop)
    has no meaning for an engine."""

    def forward(hidden_states, encoder_hidden_states, timestep=None, encoder_attention_mask=None,
                return_all_hidden_states=False, image_mask=None, backbone_attention_mask=None, kv_cache=None):
        if return_all_hidden_states:
            raise EngineError("the DiT engine returns only the final output (return_all_hidden_states=True asked)")
        out = engine(hidden_states, encoder_hidden_states, timestep,
                     image_mask=image_mask, backbone_attention_mask=backbone_attention_mask)
        # a fresh tensor in the dtype the PyTorch DiT produced: an engine may reuse its buffer next step
        return out.to(hidden_states.dtype) if out.dtype != hidden_states.dtype else out.clone()

    forward.dit_engine = engine
    forward.tensorrt_engine = engine  # the name earlier releases used
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


def install_dit_engine(policy, engine, *, fp32_accumulation: bool | None = None) -> dict:
    """Swap `policy.model.action_head.model.forward` for the engine; returns what was done.

    `fp32_accumulation` None means: on whenever the engine's output is not bf16.
    """
    head = getattr(getattr(policy, "model", None), "action_head", None)
    dit = getattr(head, "model", None)
    if dit is None:
        raise EngineError("this Gr00tPolicy has no model.action_head.model (the DiT): not a GR00T N1.6 policy?")
    dit.forward = make_dit_forward(engine)
    if fp32_accumulation is None:
        fp32_accumulation = dtype_name(engine.output_dtype) != "bfloat16"
    if fp32_accumulation:
        accumulate_in_fp32(head)
    backend = getattr(engine, "backend", "tensorrt")
    log.info("DiT forward served by %s %s (output %s, FP32 Euler accumulation %s)", backend,
             engine.path, dtype_name(engine.output_dtype), "on" if fp32_accumulation else "off")
    return {"dit_backend": backend, **engine.describe(), "fp32_accumulation": bool(fp32_accumulation)}


def free_pytorch_dit(policy, torch) -> None:
    """Drop the PyTorch DiT weights once an engine serves it (GPU memory matters on Orin)."""
    for param in policy.model.action_head.model.parameters():
        param.data = param.data.new_empty(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
