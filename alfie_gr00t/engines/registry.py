"""Choose and load the inference engine the server's parameters ask for.

engine:=triton or a `triton://host:port/model[/version]` checkpoint -> TritonEngine (GPU work
in a Triton pool).
mock_mode -> MockEngine; `.engine`/`.plan` -> TensorRT; `.onnx` -> ONNX Runtime, or with
use_tensorrt a FP16 plan built once beside it (`model.onnx` -> `model.fp16.plan`,
rebuilt when the ONNX is newer); an Isaac-GR00T checkpoint directory -> Gr00tPolicy,
with use_tensorrt its DiT served by a TensorRT engine (NVIDIA's N1.6 deployment).
Anything else is an EngineError naming the fix. It never falls back to the mock: a
robot that silently holds position looks like a working policy.
Backends are imported only when chosen, so this module needs nothing beyond numpy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alfie_gr00t.engines.base import Engine, EngineConfig, EngineError

log = logging.getLogger(__name__)

PLAN_SUFFIXES = (".engine", ".plan")
ONNX_SUFFIX = ".onnx"
_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "model*.pt")
_MOCK_HINT = "or mock_mode:=true to run without a model"


def is_gr00t_checkpoint(directory: Path) -> bool:
    """An Isaac-GR00T checkpoint directory: config.json plus HF-style weights."""
    if not (directory / "config.json").is_file():
        return False
    return any(any(directory.glob(pattern)) for pattern in _WEIGHT_PATTERNS)


def classify_checkpoint(path: Path) -> str:
    """'tensorrt', 'onnx' or 'gr00t' for an existing path; EngineError for anything else."""
    if path.is_dir():
        if is_gr00t_checkpoint(path):
            return "gr00t"
        found = sorted(p.name for p in path.iterdir())[:10]
        raise EngineError(
            f"directory {path} is not an Isaac-GR00T checkpoint: expected config.json and model weights "
            f"(*.safetensors) as written by Isaac-GR00T fine-tuning; found {found}. Point model_checkpoint "
            f"at a checkpoint directory, a .onnx file or a TensorRT .engine/.plan, {_MOCK_HINT}"
        )
    suffix = path.suffix.lower()
    if suffix in PLAN_SUFFIXES:
        return "tensorrt"
    if suffix == ONNX_SUFFIX:
        return "onnx"
    hint = ""
    if suffix in (".pth", ".pt", ".ckpt", ".bin", ".safetensors"):
        hint = (" A bare PyTorch weights file cannot be served: use the Isaac-GR00T checkpoint directory it "
                "came from, or export the policy to ONNX (docs/checkpoint.md).")
    raise EngineError(
        f"unsupported model_checkpoint {path} (suffix '{suffix or '<none>'}').{hint} Supported: a .onnx file, "
        f"a TensorRT .engine/.plan, or an Isaac-GR00T checkpoint directory; {_MOCK_HINT}"
    )


def cached_plan_path(onnx_path: Path) -> Path:
    """Where the auto-built FP16 plan for an ONNX file lives: model.onnx -> model.fp16.plan."""
    return onnx_path.with_suffix(".fp16.plan")


def plan_is_stale(onnx_path: Path, plan_path: Path) -> bool:
    """True when the plan is missing or older than the ONNX it was built from."""
    return not plan_path.is_file() or plan_path.stat().st_mtime < onnx_path.stat().st_mtime


def _checkpoint_path(config: EngineConfig) -> Path:
    raw = config.model_checkpoint.strip()
    if not raw:
        raise EngineError(
            "mock_mode is false but model_checkpoint is empty: set model_checkpoint:=/path/to/model "
            f"(.onnx, .engine/.plan, or an Isaac-GR00T checkpoint directory), {_MOCK_HINT}"
        )
    path = Path(raw).expanduser()
    if not path.exists():
        raise EngineError(f"model_checkpoint {path} does not exist: check the path, {_MOCK_HINT}")
    return path


def _require_cuda_device(config: EngineConfig) -> None:
    if not config.device.startswith("cuda"):
        raise EngineError(f"TensorRT runs only on an NVIDIA GPU but device is '{config.device}': set device:=cuda:0, "
                          "or serve the .onnx with use_tensorrt:=false")


def _tensorrt_from_onnx(config: EngineConfig, onnx_path: Path) -> Engine:
    from alfie_gr00t.engines import tensorrt_engine

    plan_path = cached_plan_path(onnx_path)
    if plan_is_stale(onnx_path, plan_path):
        log.info("building FP16 TensorRT plan %s from %s (once; cached beside the ONNX)", plan_path, onnx_path)
        summary = tensorrt_engine.build_plan(onnx_path, plan_path, fp16=True, config=config)
        log.info("built %s in %.1f s (%d bytes)", plan_path, summary["seconds"], summary["size_bytes"])
    try:
        return tensorrt_engine.TensorRTEngine(config, plan_path)
    except tensorrt_engine.PlanLoadError:
        log.warning("cached plan %s does not load with this TensorRT/GPU; rebuilding it", plan_path)
        tensorrt_engine.build_plan(onnx_path, plan_path, fp16=True, config=config)
        return tensorrt_engine.TensorRTEngine(config, plan_path)


def create_engine(config: EngineConfig) -> Engine:
    """Load the engine the config names; EngineError with the fix when that is impossible."""
    if config.engine == "triton" or config.model_checkpoint.strip().startswith("triton://"):
        from alfie_gr00t.engines.triton_engine import TritonEngine

        log.info("engine: Triton Inference Server (model repository in share/alfie_gr00t/triton)")
        return TritonEngine(config)
    if config.mock_mode:
        from alfie_gr00t.engines.mock import MockEngine, describe

        log.info("engine: %s, no model loaded", describe(config.mock_policy))
        return MockEngine(config)
    path = _checkpoint_path(config)
    kind = classify_checkpoint(path)
    if kind == "tensorrt":
        _require_cuda_device(config)
        from alfie_gr00t.engines.tensorrt_engine import TensorRTEngine

        log.info("engine: TensorRT plan %s", path)
        return TensorRTEngine(config, path)
    if kind == "onnx" and config.use_tensorrt:
        _require_cuda_device(config)
        log.info("engine: TensorRT (FP16 plan from %s)", path)
        return _tensorrt_from_onnx(config, path)
    if kind == "onnx":
        from alfie_gr00t.engines.onnx_engine import OnnxEngine

        log.info("engine: ONNX Runtime %s", path)
        return OnnxEngine(config, path)
    from alfie_gr00t.engines.gr00t_policy_engine import Gr00tPolicyEngine

    log.info("engine: Isaac-GR00T Gr00tPolicy %s (DiT in %s)", path, dit_backend_label(config))
    return Gr00tPolicyEngine(config, path)


def dit_backend_label(config: EngineConfig) -> str:
    """Where the DiT of a checkpoint directory runs, as dit_swap.py picks it: dit_engine_path by its
    suffix (whatever use_tensorrt says), else TensorRT with tensorrt_engine_path or use_tensorrt, else PyTorch."""
    from alfie_gr00t.engines import dit_swap

    if config.dit_engine_path:
        try:
            backend = dit_swap.backend_of(Path(config.dit_engine_path))
        except EngineError:
            return "a file of unknown type"  # the engine refuses it next, naming the suffixes
        return "onnxruntime" if backend == "onnxruntime" else "TensorRT"
    return "TensorRT" if (config.use_tensorrt or config.tensorrt_engine_path) else "PyTorch"
