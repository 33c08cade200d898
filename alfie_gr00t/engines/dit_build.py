"""Build the GR00T N1.6 DiT engine from Isaac-GR00T's exported `dit_model.onnx`.

Precision follows TensorRT's own rules, detected, not guessed:
* strongly typed (the ONNX's types decide) whenever the ONNX already is the requested
  precision, for fp8 (its Q/DQ nodes decide), and always on TensorRT 11;
* on TensorRT 10 a request that differs from the ONNX's type (an fp16 engine from the
  bf16 export, the one Orin runs) builds weakly typed with that precision's builder flag
  and an FP32 output; TensorRT 11 has no such flags, so there it is refused with the fix.
fp8 needs compute capability >= 8.9 (Ada, Hopper, Blackwell) and bf16 >= 8.0; Orin is 8.7.

Shape profile: batch 1..max_batch; `sa_embs` sequence = 1 state token + the action
horizon; `vl_embs` and the masks take backbone sequences up to `vl_max`. Sequence hints
come from the arguments or from Isaac-GR00T's `export_metadata.json` beside the ONNX.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from alfie_gr00t.engines import trt_api
from alfie_gr00t.engines.base import EngineError
from alfie_gr00t.engines.trt_dit import OPTIONAL_INPUTS, OUTPUT, REQUIRED_INPUTS

PRECISIONS = ("fp16", "bf16", "fp32", "fp8")
MIN_CAPABILITY = {"bf16": (8, 0), "fp8": (8, 9)}
_FLAG = {"fp16": "FP16", "bf16": "BF16"}
_AUTOCAST = ("python -m modelopt.onnx.autocast --onnx_path {onnx} --low_precision_type {p} "
             "--output_path {stem}_{p}.onnx (NVIDIA ModelOpt)")


def onnx_io(onnx_path: Path) -> tuple[dict, dict, bool]:
    """({input: (dims, dtype name)}, {output: ...}, has_qdq) read with the onnx package (no weights)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}

    def describe(value):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if tensor.elem_type == TensorProto.BFLOAT16:  # onnx < 1.19 maps it to float32: a bf16 DiT as fp32
            return dims, "bfloat16"
        return dims, str(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).replace("ml_dtypes.", "")

    inputs = {v.name: describe(v) for v in model.graph.input if v.name not in weights}
    outputs = {v.name: describe(v) for v in model.graph.output}
    has_qdq = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)
    return inputs, outputs, has_qdq


def is_dit_onnx(inputs: dict) -> bool:
    return all(name in inputs for name in REQUIRED_INPUTS)


def check_dit_io(inputs: dict, outputs: dict) -> None:
    missing = [n for n in REQUIRED_INPUTS if n not in inputs] + ([OUTPUT] if OUTPUT not in outputs else [])
    unknown = [n for n in inputs if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
    if missing or unknown:
        raise EngineError(f"not a GR00T N1.6 DiT ONNX: missing {missing}, unexpected inputs {unknown}; expected "
                          f"{list(REQUIRED_INPUTS + OPTIONAL_INPUTS)} -> '{OUTPUT}' (export_onnx_n1d6.py, or "
                          "export_onnx_n1d7.py --export-mode dit_only)")


def onnx_precision(inputs: dict) -> str:
    """fp32 / fp16 / bf16: the float type of `sa_embs`, which the export casts everything to."""
    dtype = inputs["sa_embs"][1]
    if dtype not in trt_api.PRECISION_OF:
        raise EngineError(f"'sa_embs' is {dtype}; expected float32, float16 or bfloat16")
    return trt_api.PRECISION_OF[dtype]


def check_precision(precision: str, gpu: str, capability: tuple[int, int]) -> None:
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    need = MIN_CAPABILITY.get(precision)
    if need and tuple(capability) < need:
        hint = " Jetson Orin (sm_87) has no FP8 hardware: build fp16." if precision == "fp8" else " Build fp16."
        raise EngineError(f"{precision} needs a GPU of compute capability >= {need[0]}.{need[1]}; {gpu} is "
                          f"{capability[0]}.{capability[1]}.{hint}")


def plan_typing(precision: str, onnx_type: str, has_qdq: bool, features: trt_api.Features, onnx_path: Path) -> bool:
    """True for a strongly typed build; EngineError when this TensorRT cannot give `precision`."""
    if precision == "fp8":
        if not has_qdq:
            raise EngineError(f"an fp8 engine needs an ONNX with FP8 Q/DQ nodes; {onnx_path.name} has none "
                              "(Isaac-GR00T: export_onnx_n1d6.py --export_mode full_pipeline --precision fp8, "
                              "needs nvidia-modelopt; the dit_only export ignores fp8)")
        return True
    if precision == onnx_type:
        return True
    if features.weak_typing and (precision != "bf16" or features.bf16_flag):
        return False  # TensorRT 10: the builder flag (fp16/bf16) or no flag (fp32) sets the precision
    stem = str(onnx_path.with_suffix(""))
    raise EngineError(
        f"TensorRT {features.version} builds only strongly typed networks, so the engine gets the ONNX's own type "
        f"({onnx_type}); for {precision} convert the ONNX first: "
        + _AUTOCAST.format(onnx=onnx_path, p=precision, stem=stem)
        + f", or build with TensorRT 10 (JetPack 6), or ask for --precision {onnx_type}")


def sequence_hints(onnx_path: Path, sa_seq_len: int | None, vl_seq_len: int | None) -> tuple[int, int]:
    meta_path = onnx_path.parent / "export_metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    sa = sa_seq_len or meta.get("sa_seq_len")
    vl = vl_seq_len or meta.get("vl_seq_len")
    if not sa or not vl:
        raise EngineError(f"the DiT profile needs the sequence lengths: pass --sa-seq-len (1 + action horizon) and "
                          "--vl-seq-len (backbone tokens), or keep export_metadata.json from export_onnx_n1d6.py "
                          f"(or _n1d7.py) beside {onnx_path.name}")
    return int(sa), int(vl)


def profile_shapes(network_inputs: dict, max_batch: int, sa_len: int, vl_len: int, vl_max: int | None) -> dict:
    """{input: (min, opt, max)} from the parsed network's dims (-1 = dynamic)."""
    vl_hi = int(vl_max or max(2 * vl_len, vl_len + 64))
    if vl_hi < vl_len:
        raise EngineError(f"--vl-max {vl_hi} is below --vl-seq-len {vl_len}")
    shapes = {}
    for name, dims in network_inputs.items():
        lo, opt, hi = [], [], []
        for axis, dim in enumerate(dims):
            if dim >= 0:
                lo.append(dim), opt.append(dim), hi.append(dim)
            elif axis == 0:
                lo.append(1), opt.append(1), hi.append(int(max_batch))
            elif axis == 1 and name == "sa_embs":
                lo.append(sa_len), opt.append(sa_len), hi.append(sa_len)
            elif axis == 1:
                lo.append(1), opt.append(vl_len), hi.append(vl_hi)
            else:
                raise EngineError(f"input '{name}' has a dynamic axis {axis} ({dims}); only batch and sequence may vary")
        shapes[name] = (tuple(lo), tuple(opt), tuple(hi))
    return shapes


def build_dit_engine(onnx_path, engine_path, *, precision: str = "fp16", gpu: tuple[str, tuple[int, int]],
                     max_batch: int = 1, sa_seq_len: int | None = None, vl_seq_len: int | None = None,
                     vl_max: int | None = None, workspace_mb: int = 8192, timing_cache=None, trt=None) -> dict:
    """Build and write the DiT engine plus its sidecar; returns the summary.

    `gpu` is (name, compute capability) of the GPU it builds on (the one it will run on).
    """
    trt = trt or trt_api.import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX file {onnx_path} does not exist")
    features = trt_api.Features.of(trt)
    check_precision(precision, *gpu)
    inputs, outputs, has_qdq = onnx_io(onnx_path)
    check_dit_io(inputs, outputs)
    source_type = onnx_precision(inputs)
    strongly_typed = plan_typing(precision, source_type, has_qdq, features, onnx_path)
    sa_len, vl_len = sequence_hints(onnx_path, sa_seq_len, vl_seq_len)
    started = time.perf_counter()

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = trt_api.create_network(trt, builder, strongly_typed)
    _parser = trt_api.parse_onnx(trt, network, logger, onnx_path)  # noqa: F841 -- owns the weights until built
    net_inputs = {network.get_input(i).name: list(network.get_input(i).shape) for i in range(network.num_inputs)}
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) * 2**20)
    if not strongly_typed and precision in _FLAG:
        cfg.set_flag(getattr(trt.BuilderFlag, _FLAG[precision]))
        for i in range(network.num_outputs):  # FP32 output buffer: the denoising loop accumulates in FP32
            network.get_output(i).dtype = trt.float32
    shapes = profile_shapes(net_inputs, max_batch, sa_len, vl_len, vl_max)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    cfg.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cache = trt_api.load_timing_cache(cfg, cache_path)
    serialized = builder.build_serialized_network(network, cfg)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build the DiT engine from {onnx_path} (see the TensorRT log above)")
    trt_api.write_atomically(engine_path, bytes(serialized))
    if cache_path is not None:
        trt_api.write_atomically(cache_path, bytes(cache.serialize()))
    facts = {
        "kind": "gr00t_n1d6_dit", "onnx": str(onnx_path), "onnx_precision": source_type, "precision": precision,
        "typing": "strong" if strongly_typed else "weak", "tensorrt_version": str(trt.__version__),
        "gpu": gpu[0], "compute_capability": list(gpu[1]),
        "profile": {name: [list(s) for s in shape] for name, shape in shapes.items()},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    trt_api.write_sidecar(engine_path, facts)
    return {**facts, "engine": str(engine_path), "size_bytes": engine_path.stat().st_size,
            "seconds": round(time.perf_counter() - started, 2), "timing_cache": str(cache_path) if cache_path else None}
