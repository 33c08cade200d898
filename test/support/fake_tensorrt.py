"""Fake `tensorrt` modules with the builder API surfaces of TensorRT 10 and TensorRT 11.

They are fakes, named as such: they build nothing, they record what the code asked for.
Names and call shapes mirror the real Python API (docs.nvidia.com, TensorRT 10.x and
11.x Python API and the 10.x -> 11.x migration guide):
* TensorRT 10: BuilderFlag has FP16/BF16/INT8/FP8, NetworkDefinitionCreationFlag has
  STRONGLY_TYPED (opt-in), IInt8EntropyCalibrator2 and set_calibration_profile exist;
* TensorRT 11: those BuilderFlags, int8_calibrator, set_calibration_profile and the
  calibrators are gone; STRONGLY_TYPED is kept but ignored (every network is strongly typed).
The "ONNX parser" reads the file's declared inputs/outputs with the onnx package.
On TensorRT 10 a build with BuilderFlag.INT8 and an `int8_calibrator` drives the calibrator
the way the builder does: read_calibration_cache() first; without a cache, get_batch(names)
until it returns None, then write_calibration_cache(CALIBRATION_TABLE).
Each build is recorded in `trt.built` as (network, config, record); the "plan" is the
record as JSON. The runtime (`Runtime`, `ICudaEngine`, `IExecutionContext`) deserialises such a
plan and runs its ONNX with ONNX Runtime on the stand-in CUDA of fake_cuda.py.
"""

from __future__ import annotations

import enum
import json
import types

import numpy as np
import onnx
from onnx import TensorProto

from alfie_gr00t.engines.onnx_engine import ort_spec

from support.fake_cuda import FakeBuffer, FakeStream


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


_ONNX_TO_TRT = {TensorProto.FLOAT: DataType.FLOAT, TensorProto.FLOAT16: DataType.HALF,
                TensorProto.BFLOAT16: DataType.BF16, TensorProto.INT64: DataType.INT64,
                TensorProto.INT32: DataType.INT32, TensorProto.BOOL: DataType.BOOL, TensorProto.UINT8: DataType.UINT8}


def nptype(trt_type):
    """Like tensorrt.nptype: the numpy type, TypeError where numpy has none (bf16)."""
    names = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "BOOL": "bool_",
             "UINT8": "uint8", "INT64": "int64"}
    if trt_type.name not in names:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {trt_type}")
    return getattr(np, names[trt_type.name])


class TensorIOMode(enum.Enum):
    """Module level (not per fake module), so a stand-in runtime can share it."""
    NONE = 0
    INPUT = 1
    OUTPUT = 2


CALIBRATION_TABLE = b"calibration-table"


class FakeITensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class FakeINetworkDefinition:
    def __init__(self, flags):
        self.flags = flags
        self.inputs, self.outputs, self.onnx = [], [], None

    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]


class FakeOnnxParser:
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    def parse_from_file(self, path):
        try:
            graph = onnx.load(path, load_external_data=False).graph
        except Exception as exc:
            self.errors.append(f"In node -1: {exc}")
            return False

        def tensor(value):
            t = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            return FakeITensor(value.name, dims, _ONNX_TO_TRT[t.elem_type])

        weights = {i.name for i in graph.initializer}
        self.network.onnx = path
        self.network.inputs = [tensor(v) for v in graph.input if v.name not in weights]
        self.network.outputs = [tensor(v) for v in graph.output]
        return True

    num_errors = property(lambda self: len(self.errors))

    def get_error(self, i):
        return self.errors[i]


class FakeIOptimizationProfile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 -- the real keyword names
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class FakeITimingCache:
    def __init__(self, data):
        self.data = bytes(data)

    def serialize(self):
        return self.data + b"+timings"


class FakeIBuilderConfig:
    def __init__(self):
        self.flags, self.profiles, self.pool, self.timing_cache = set(), [], {}, None

    def set_memory_pool_limit(self, pool, size):
        self.pool[pool] = size

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_flag(self, flag):
        self.flags.add(flag)

    def create_timing_cache(self, serialized_timing_cache):
        return FakeITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing_cache = cache
        return True


class FakeIBuilderConfig10(FakeIBuilderConfig):
    """TensorRT 10 also has implicit INT8 calibration."""

    def __init__(self):
        super().__init__()
        self.int8_calibrator = self.calibration_profile = None

    def set_calibration_profile(self, profile):
        self.calibration_profile = profile


def make_fake_tensorrt(major: int):
    """A fake `tensorrt` module with TensorRT `major`'s builder surface (10 or 11)."""
    trt = types.ModuleType(f"fake_tensorrt_{major}")
    trt.__version__ = {10: "10.3.0.26", 11: "11.4.0.1"}[major]
    trt.DataType = DataType
    trt.float32, trt.float16, trt.bfloat16, trt.int64, trt.bool = (
        DataType.FLOAT, DataType.HALF, DataType.BF16, DataType.INT64, DataType.BOOL)
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", {"WORKSPACE": 0})
    trt.TensorIOMode = TensorIOMode
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    flags = {"TF32": 7, "REFIT": 8, "SPARSE_WEIGHTS": 9}
    if major == 10:
        flags.update(FP16=0, BF16=17, INT8=1, FP8=16)
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flags)
    trt.built = []

    class Logger:
        WARNING = 2

        def __init__(self, min_severity=WARNING):
            self.min_severity = min_severity

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return FakeINetworkDefinition(flags)

        def create_builder_config(self):
            return FakeIBuilderConfig10() if major == 10 else FakeIBuilderConfig()

        def create_optimization_profile(self):
            return FakeIOptimizationProfile()

        def build_serialized_network(self, network, config):
            strongly_typed = major >= 11 or bool(network.flags & (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
            if strongly_typed and config.flags & {f for f in trt.BuilderFlag if f.name in ("FP16", "BF16", "INT8", "FP8")}:
                raise AssertionError("a strongly typed network refuses precision builder flags")
            record = {"onnx": network.onnx, "strongly_typed": strongly_typed,
                      "flags": sorted(f.name for f in config.flags),
                      "outputs": {t.name: t.dtype.name for t in network.outputs},
                      "profile": {k: [list(s) for s in v] for k, v in config.profiles[0].shapes.items()}}
            if major == 10 and trt.BuilderFlag.INT8 in config.flags and config.int8_calibrator is not None:
                record["calibration"] = calibrate(network, config)
            trt.built.append((network, config, record))
            return json.dumps(record).encode()

    def calibrate(network, config):
        """Implicit INT8 calibration (TensorRT 10): the batches' device pointers, or a cache hit."""
        dynamic = any(d < 0 for t in network.inputs for d in t.shape)
        if dynamic and config.calibration_profile is None:
            raise AssertionError("calibrating a network with dynamic shapes needs set_calibration_profile")
        calibrator = config.int8_calibrator
        if calibrator.read_calibration_cache():
            return {"from_cache": True, "batches": []}
        names = [t.name for t in network.inputs]
        batches = []
        while pointers := calibrator.get_batch(names):  # None (or nothing): no more batches
            assert len(pointers) == len(names), "get_batch returns one device pointer per input name"
            batches.append([int(p) for p in pointers])
        calibrator.write_calibration_cache(CALIBRATION_TABLE)
        return {"from_cache": False, "batches": batches}

    trt.nptype = nptype
    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, FakeOnnxParser
    if major == 10:
        class IInt8EntropyCalibrator2:
            def __init__(self):
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


# ---------------------------------------------------------------- the runtime: a "plan" that runs its ONNX with ONNX Runtime


_TRT_DTYPE = {np.dtype(nptype(t)): t for t in DataType if t is not DataType.BF16}


class FakeEngine:
    """Declares the ONNX's I/O (dtype overrides simulate FP16 bindings); runs it with ORT.

    `spec` is fake_plan()'s ({"onnx", "dtypes", "max_batch"}) or a plan that fake_tensorrt's
    Builder built (its record): profile 0 bounds the batch. Like real TensorRT, the FP16
    builder flag changes kernels, not the I/O bindings: those keep the ONNX's declared types
    (FP16 bindings are covered by fake_plan()'s dtype overrides).
    """

    def __init__(self, spec):
        import onnxruntime  # here: the builder fakes need only onnx

        self.session = onnxruntime.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
        if "profile" in spec:
            spec = dict(spec, max_batch=min(shapes[2][0] for shapes in spec["profile"].values()), dtypes={})
        self.max_batch = spec.get("max_batch", 4)
        self.tensors = {}
        for arg, mode in [(a, TensorIOMode.INPUT) for a in self.session.get_inputs()] + \
                         [(a, TensorIOMode.OUTPUT) for a in self.session.get_outputs()]:
            s = ort_spec(arg)
            dtype = np.dtype(spec.get("dtypes", {}).get(s.name, s.dtype))
            self.tensors[s.name] = (mode, s.shape, dtype, s.dtype)
        self.names = list(self.tensors)

    num_io_tensors = property(lambda self: len(self.names))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_shape(self, name):
        return self.tensors[name][1]

    def get_tensor_dtype(self, name):
        return _TRT_DTYPE[self.tensors[name][2]]

    def get_tensor_profile_shape(self, name, profile):
        shape = self.tensors[name][1]
        return [(1,) + shape[1:], (1,) + shape[1:], (self.max_batch,) + shape[1:]]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses, self.runs = engine, {}, {}, 0

    def set_input_shape(self, name, shape):
        assert 1 <= shape[0] <= self.engine.max_batch, f"shape {shape} outside the profile"
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name in self.shapes:
            return self.shapes[name]
        batch = self.shapes["state"][0]
        return (batch,) + tuple(self.engine.tensors[name][1][1:])

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        assert set(self.addresses) == set(self.engine.names), "every I/O tensor needs an address"
        FakeStream.registry[stream_handle].queue.append(self._execute)
        return True

    def _execute(self):
        self.runs += 1
        feeds = {}
        for name in self.engine.names:
            mode, _, bound, native = self.engine.tensors[name]
            if mode == TensorIOMode.INPUT:
                shape = self.shapes[name]
                raw = FakeBuffer.registry[self.addresses[name]].read(int(np.prod(shape)) * bound.itemsize)
                feeds[name] = raw.view(bound).reshape(shape).astype(native)
        (actions,) = self.engine.session.run(["actions"], feeds)
        FakeBuffer.registry[self.addresses["actions"]].write(
            actions.astype(self.engine.tensors["actions"][2]).view(np.uint8).ravel())


class FakeRuntime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        try:
            return FakeEngine(json.loads(data))
        except ValueError:
            return None
