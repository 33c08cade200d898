"""groot_build_engine: build a TensorRT engine for GR00T N1.6's DiT, or a single-graph plan.

    groot_build_engine dit_model.onnx [--precision fp16|bf16|fp32|fp8] [-o dit_model_fp16.engine]
                       [--sa-seq-len N --vl-seq-len N] [--max-batch N]
    groot_build_engine model.onnx --check
    groot_build_engine model.onnx -o model.plan --fp16 [--int8 --calibration-data DIR]

An ONNX with inputs sa_embs/vl_embs/timestep is Isaac-GR00T's exported DiT (export_onnx_n1d6.py);
anything else must follow the single-graph contract (images + state -> actions).
Runs on TensorRT 10 and 11. Exit status: 0 built/valid, 1 the model or the build failed,
2 a tool is missing (tensorrt, pycuda/torch, onnx), or the arguments or the GPU cannot do it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alfie_gr00t.engines import contract, dit_build
from alfie_gr00t.engines.base import EngineConfig, EngineError
from alfie_gr00t.engines.dit_build import PRECISIONS

EXIT_OK, EXIT_FAILED, EXIT_MISSING_TOOL = 0, 1, 2


def onnx_specs(path: Path) -> tuple[list[contract.TensorSpec], list[contract.TensorSpec]]:
    """Declared graph inputs (initializers excluded) and outputs, read with the onnx package."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    weights = {init.name for init in graph.initializer}

    def spec(value):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if tensor.elem_type == TensorProto.BFLOAT16 and getattr(dtype, "itemsize", 0) != 2:
            # onnx < 1.19 maps bf16 to float32, which would pass for an fp32 graph
            raise ValueError(f"{value.name} is bfloat16 and this onnx {onnx.__version__} has no numpy bfloat16 "
                             "(it reads it as float32); install onnx >= 1.19")
        return contract.TensorSpec.of(value.name, dims, dtype)

    inputs = [spec(v) for v in graph.input if v.name not in weights]
    return inputs, [spec(v) for v in graph.output]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="groot_build_engine", description=__doc__.split("\n")[0])
    p.add_argument("onnx", type=Path, help="Isaac-GR00T dit_model.onnx, or a single-graph policy (docs/checkpoint.md)")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: dit_model_<precision>.engine for a DiT; "
                   "<onnx>.fp16.plan / .int8.plan / .plan for a single graph)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16",
                   help="DiT engine precision (default fp16, the one Jetson Orin runs; fp8 needs sm_89+)")
    p.add_argument("--sa-seq-len", type=int, help="DiT: 1 + action horizon (default: export_metadata.json)")
    p.add_argument("--vl-seq-len", type=int, help="DiT: backbone tokens per observation (default: export_metadata.json)")
    p.add_argument("--vl-max", type=int, help="DiT: longest backbone sequence the profile accepts (default 2x)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True,
                   help="single graph: allow FP16 kernels (default on; TensorRT 10 only)")
    p.add_argument("--int8", action="store_true", help="allow INT8 kernels, calibrated with --calibration-data")
    p.add_argument("--calibration-data", type=Path, help="directory of .npz observation batches for INT8 calibration")
    p.add_argument("--workspace-mb", type=int, default=4096, help="builder workspace limit (MiB)")
    p.add_argument("--timing-cache", type=Path, help="TensorRT timing cache file to read and update")
    p.add_argument("--max-batch", type=int, help="largest batch of the profile (default: 1 for a DiT, 8 for a graph)")
    p.add_argument("--device", default="cuda:0", help="GPU to build on")
    p.add_argument("--check", action="store_true", help="only validate the ONNX against the contract (no TensorRT)")
    return p


def default_output(onnx_path: Path, fp16: bool, int8: bool) -> Path:
    precision = "int8" if int8 else "fp16" if fp16 else None
    return onnx_path.with_suffix(f".{precision}.plan" if precision else ".plan")


def default_dit_output(onnx_path: Path, precision: str) -> Path:
    return onnx_path.with_name(f"{onnx_path.stem}_{precision}.engine")


def _dit_inputs(path: Path) -> dict | None:
    """The ONNX's inputs when it is Isaac-GR00T's exported DiT, else None."""
    inputs, _outputs, _qdq = dit_build.onnx_io(path)
    return inputs if dit_build.is_dit_onnx(inputs) else None


def _build_gpu(device: str) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of the GPU to build on: torch when present, else pycuda."""
    from alfie_gr00t.engines import trt_dit

    try:
        torch = trt_dit.import_torch()
    except EngineError:
        from alfie_gr00t.engines.cuda_memory import CudaDevice

        gpu = CudaDevice(device)
        try:
            return gpu.name, gpu.capability
        finally:
            gpu.free()
    return trt_dit.gpu_facts(torch, device)


def _build_dit(args) -> int:
    from alfie_gr00t.engines import trt_api

    try:
        trt = trt_api.import_tensorrt()
        gpu = _build_gpu(args.device)
        dit_build.check_precision(args.precision, *gpu)
    except EngineError as exc:
        print(f"groot_build_engine cannot build the DiT engine here: {exc}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    output = args.output or default_dit_output(args.onnx, args.precision)
    try:
        summary = dit_build.build_dit_engine(
            args.onnx, output, precision=args.precision, gpu=gpu, max_batch=args.max_batch or 1,
            sa_seq_len=args.sa_seq_len, vl_seq_len=args.vl_seq_len, vl_max=args.vl_max,
            workspace_mb=args.workspace_mb, timing_cache=args.timing_cache, trt=trt)
    except EngineError as exc:
        print(f"build FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"built {summary['engine']} ({summary['precision']}, {summary['typing']}ly typed, "
          f"{summary['size_bytes'] / 2**20:.1f} MiB) in {summary['seconds']:.1f} s with TensorRT "
          f"{summary['tensorrt_version']} on {summary['gpu']}; next: groot_check_engine")
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def _check(args, config: EngineConfig) -> int:
    try:
        dit_inputs = _dit_inputs(args.onnx)
        if dit_inputs is not None:
            dit_build.check_dit_io(*dit_build.onnx_io(args.onnx)[:2])
            print(f"{args.onnx} is a GR00T N1.6 DiT ({dit_build.onnx_precision(dit_inputs)}): "
                  f"{json.dumps(dit_inputs)}")
            return EXIT_OK
        inputs, outputs = onnx_specs(args.onnx)
    except ImportError:
        print("groot_build_engine --check needs the onnx package: pip install onnx", file=sys.stderr)
        return EXIT_MISSING_TOOL
    except EngineError as exc:
        print(f"DiT check FAILED for {args.onnx}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # onnx raises DecodeError / ValidationError for bad files
        print(f"cannot read {args.onnx}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        plan = contract.check_contract(inputs, outputs, config)
    except EngineError as exc:
        print(f"contract check FAILED for {args.onnx}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.onnx} follows the alfie_gr00t contract")
    print(json.dumps({"inputs": {s.name: [list(s.shape), s.dtype.name] for s in inputs},
                      "outputs": {s.name: [list(s.shape), s.dtype.name] for s in outputs},
                      "plan": plan.describe()}, indent=2))
    return EXIT_OK


def _build(args, config: EngineConfig) -> int:
    from alfie_gr00t.engines import tensorrt_engine

    try:
        tensorrt_engine.import_tensorrt()
        from alfie_gr00t.engines.cuda_memory import import_pycuda
        import_pycuda()
    except EngineError as exc:
        print(f"groot_build_engine cannot build a plan here: {exc}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    output = args.output or default_output(args.onnx, args.fp16, args.int8)
    try:
        summary = tensorrt_engine.build_plan(
            args.onnx, output, fp16=args.fp16, int8=args.int8, calibration_dir=args.calibration_data,
            workspace_mb=args.workspace_mb, timing_cache=args.timing_cache, config=config,
            max_batch=args.max_batch or 8)
    except EngineError as exc:
        print(f"build FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"built {summary['plan']} ({summary['precision']}, {summary['size_bytes'] / 2**20:.1f} MiB) "
          f"in {summary['seconds']:.1f} s with TensorRT {summary['tensorrt_version']}")
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.onnx.is_file():
        print(f"no such ONNX file: {args.onnx}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    if args.int8 and not args.calibration_data and not args.check:
        print("--int8 needs --calibration-data DIR", file=sys.stderr)
        return EXIT_MISSING_TOOL
    config = EngineConfig(mock_mode=False, device=args.device)
    if args.check:
        return _check(args, config)
    try:
        is_dit = _dit_inputs(args.onnx) is not None
    except ImportError:
        print("groot_build_engine needs the onnx package to read the model: pip install onnx", file=sys.stderr)
        return EXIT_MISSING_TOOL
    except Exception as exc:  # not an ONNX file: let the builder's parser say why
        print(f"note: could not read {args.onnx} with onnx ({type(exc).__name__}); treating it as a single graph",
              file=sys.stderr)
        is_dit = False
    return _build_dit(args) if is_dit else _build(args, config)


if __name__ == "__main__":
    sys.exit(main())
