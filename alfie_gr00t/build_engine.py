"""groot_build_engine: check an ONNX policy against the contract, or build a TensorRT plan.

    groot_build_engine model.onnx --check
    groot_build_engine model.onnx -o model.plan --fp16 [--int8 --calibration-data DIR]
                       [--workspace-mb N] [--timing-cache FILE] [--max-batch N]

Exit status: 0 built/valid, 1 the model or the build failed, 2 a tool is missing
(tensorrt, pycuda or onnx) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alfie_gr00t.engines import contract
from alfie_gr00t.engines.base import EngineConfig, EngineError

EXIT_OK, EXIT_FAILED, EXIT_MISSING_TOOL = 0, 1, 2


def onnx_specs(path: Path) -> tuple[list[contract.TensorSpec], list[contract.TensorSpec]]:
    """Declared graph inputs (initializers excluded) and outputs, read with the onnx package."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    weights = {init.name for init in graph.initializer}

    def spec(value):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        return contract.TensorSpec.of(value.name, dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type))

    inputs = [spec(v) for v in graph.input if v.name not in weights]
    return inputs, [spec(v) for v in graph.output]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="groot_build_engine", description=__doc__.split("\n")[0])
    p.add_argument("onnx", type=Path, help="policy exported to the alfie_gr00t contract (README: Inference engines)")
    p.add_argument("-o", "--output", type=Path, help="plan file to write (default: <onnx>.fp16.plan / .int8.plan / .plan)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="allow FP16 kernels (default on)")
    p.add_argument("--int8", action="store_true", help="allow INT8 kernels, calibrated with --calibration-data")
    p.add_argument("--calibration-data", type=Path, help="directory of .npz observation batches for INT8 calibration")
    p.add_argument("--workspace-mb", type=int, default=4096, help="builder workspace limit (MiB)")
    p.add_argument("--timing-cache", type=Path, help="TensorRT timing cache file to read and update")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch of the dynamic-batch profile")
    p.add_argument("--device", default="cuda:0", help="GPU to build on")
    p.add_argument("--check", action="store_true", help="only validate the ONNX against the contract (no TensorRT)")
    return p


def default_output(onnx_path: Path, fp16: bool, int8: bool) -> Path:
    precision = "int8" if int8 else "fp16" if fp16 else None
    return onnx_path.with_suffix(f".{precision}.plan" if precision else ".plan")


def _check(args, config: EngineConfig) -> int:
    try:
        inputs, outputs = onnx_specs(args.onnx)
    except ImportError:
        print("groot_build_engine --check needs the onnx package: pip install onnx", file=sys.stderr)
        return EXIT_MISSING_TOOL
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
            workspace_mb=args.workspace_mb, timing_cache=args.timing_cache, config=config, max_batch=args.max_batch)
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
    return _check(args, config) if args.check else _build(args, config)


if __name__ == "__main__":
    sys.exit(main())
