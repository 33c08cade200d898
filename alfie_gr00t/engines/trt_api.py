"""What differs between TensorRT 10 and 11, found by feature detection, in one place.

TensorRT 11 removed weak typing: `BuilderFlag.FP16/BF16/INT8/FP8`, `int8_calibrator` and
`set_calibration_profile` are gone and every network is strongly typed (the
`STRONGLY_TYPED` creation flag is kept but ignored). TensorRT 10 has both modes and
needs the flag to get strong typing. Nothing here branches on a version number except
the refusal of TensorRT < 10 (no name-based tensor API there).

Also here: the engine "sidecar" (`<engine>.json`) that records which TensorRT and GPU
built an engine, so loading it elsewhere fails with a message that says why.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alfie_gr00t.engines.base import EngineError

MIN_MAJOR = 10
PIP_SPEC = "tensorrt>=10.3,<12"
_INSTALL = (f"pip install tensorrt (supported: '{PIP_SPEC}', x86_64 + NVIDIA GPU; or pip install .[tensorrt]), "
            "or on Jetson the TensorRT that JetPack ships (JetPack 6: TensorRT 10.3)")

# TensorRT DataType member name -> numpy/torch dtype name
DTYPE_NAMES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
               "INT32": "int32", "INT64": "int64", "BOOL": "bool"}
PRECISION_OF = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def major_version(trt) -> int:
    match = re.match(r"(\d+)", str(getattr(trt, "__version__", "")))
    return int(match.group(1)) if match else 0


def check_version(trt) -> None:
    if major_version(trt) < MIN_MAJOR:
        raise EngineError(
            f"TensorRT {getattr(trt, '__version__', '?')} is too old: alfie_gr00t needs TensorRT 10 or 11 "
            f"(name-based I/O tensors, execute_async_v3); {_INSTALL}")


def import_tensorrt():
    """The tensorrt module (10.x or 11.x), or an EngineError that says what to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(
            f"TensorRT is not installed ({exc}): {_INSTALL} -- or serve a .onnx with ONNX Runtime "
            "(use_tensorrt:=false), or mock_mode:=true") from exc
    check_version(trt)
    return trt


@dataclass(frozen=True)
class Features:
    """The builder API this TensorRT offers."""

    version: str
    weak_typing: bool           # BuilderFlag.FP16 exists (TensorRT 10); gone in 11
    strongly_typed_flag: bool   # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    bf16_flag: bool
    int8_calibration: bool      # BuilderFlag.INT8 + IInt8EntropyCalibrator2 (TensorRT 10 only)

    @staticmethod
    def of(trt) -> "Features":
        flags = getattr(trt, "BuilderFlag", None)
        creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
        return Features(
            version=str(trt.__version__),
            weak_typing=hasattr(flags, "FP16"),
            strongly_typed_flag=hasattr(creation, "STRONGLY_TYPED"),
            bf16_flag=hasattr(flags, "BF16"),
            int8_calibration=hasattr(flags, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2"),
        )


def create_network(trt, builder, strongly_typed: bool):
    """A network definition; strongly typed when asked (always, on TensorRT 11)."""
    flags = 0
    if strongly_typed and Features.of(trt).strongly_typed_flag:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def parse_onnx(trt, network, logger, onnx_path: Path):
    """Parse the ONNX into `network`; the parser must outlive the build (it owns the weights)."""
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}: {errors}")
    return parser


def dtype_name(trt_dtype) -> str:
    """numpy/torch name of a TensorRT DataType ('float16', 'bfloat16', ...)."""
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if name not in DTYPE_NAMES:
        raise EngineError(f"TensorRT data type {name} is not supported at an engine's inputs/outputs")
    return DTYPE_NAMES[name]


def load_timing_cache(builder_config, path: Path | None):
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = builder_config.create_timing_cache(data)
    builder_config.set_timing_cache(cache, False)
    return cache


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------- engine sidecar


def sidecar_path(engine_path: Path) -> Path:
    return Path(str(engine_path) + ".json")


def write_sidecar(engine_path: Path, facts: dict) -> Path:
    path = sidecar_path(engine_path)
    write_atomically(path, (json.dumps(facts, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_sidecar(engine_path: Path) -> dict | None:
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def check_sidecar(engine_path: Path, tensorrt_version: str, gpu_name: str, capability: tuple[int, int]) -> None:
    """Refuse, with the reason, an engine whose sidecar names another TensorRT or GPU."""
    facts = read_sidecar(engine_path)
    if facts is None:
        return
    rebuild = f"rebuild it on this machine: groot_build_engine {facts.get('onnx', '<dit_model.onnx>')}"
    built_trt = str(facts.get("tensorrt_version", ""))
    if built_trt and built_trt != tensorrt_version:
        raise EngineError(f"engine {engine_path} was built with TensorRT {built_trt} but this machine has "
                          f"TensorRT {tensorrt_version}; engines only load on the version that built them: {rebuild}")
    built_cc = facts.get("compute_capability")
    if built_cc and tuple(built_cc) != tuple(capability):
        raise EngineError(f"engine {engine_path} was built on {facts.get('gpu', '?')} (sm_{built_cc[0]}{built_cc[1]}) "
                          f"but this GPU is {gpu_name} (sm_{capability[0]}{capability[1]}): {rebuild}")
