"""groot_build_engine against the TensorRT 10 and TensorRT 11 builder API surfaces.

Both surfaces are fakes (test/support/fake_tensorrt.py) that record what the code asked for and
fail the way the real API would (a missing BuilderFlag is an AttributeError; precision
flags on a strongly typed network are refused). Real builds: test_trt_gpu.py.
"""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx builds the DiT-shaped models these tests parse")
from onnx import TensorProto, helper  # noqa: E402

from alfie_gr00t.tools import build_engine  # noqa: E402
from alfie_gr00t.engines import dit_build, trt_api, tensorrt_engine  # noqa: E402
from alfie_gr00t.engines.base import EngineConfig, EngineError  # noqa: E402

from support.fake_tensorrt import make_fake_tensorrt  # noqa: E402
from support.onnx_policy import build_reference_policy  # noqa: E402

ORIN = ("Orin (nvgpu)", (8, 7))
H100 = ("NVIDIA H100 80GB HBM3", (9, 0))


def dit_onnx(path, dtype=TensorProto.BFLOAT16, masks=True, qdq=False, sa=17):
    """A model with the exported DiT's I/O: sa_embs, vl_embs, timestep, [masks] -> output."""
    inputs = [helper.make_tensor_value_info("sa_embs", dtype, ["batch_size", sa, 8]),
              helper.make_tensor_value_info("vl_embs", dtype, ["batch_size", "vl_seq_len", 8]),
              helper.make_tensor_value_info("timestep", TensorProto.INT64, ["batch_size"])]
    if masks:
        inputs += [helper.make_tensor_value_info(n, TensorProto.BOOL, ["batch_size", "vl_seq_len"])
                   for n in ("image_mask", "backbone_attention_mask")]
    nodes = [helper.make_node("Identity", ["sa_embs"], ["output"])]
    if qdq:
        nodes.append(helper.make_node("QuantizeLinear", ["sa_embs", "s"], ["q"]))
    graph = helper.make_graph(nodes, "dit", inputs,
                              [helper.make_tensor_value_info("output", dtype, ["batch_size", sa, 8])])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture(params=[10, 11], ids=["trt10", "trt11"])
def trt(request):
    return make_fake_tensorrt(request.param)


def build(trt, onnx_path, out, **kwargs):
    kwargs.setdefault("gpu", H100)
    kwargs.setdefault("sa_seq_len", 17)
    kwargs.setdefault("vl_seq_len", 100)
    return dit_build.build_dit_engine(onnx_path, out, trt=trt, **kwargs)


# ---------------------------------------------------------------- feature detection


def test_features_of_both_surfaces():
    ten, eleven = trt_api.Features.of(make_fake_tensorrt(10)), trt_api.Features.of(make_fake_tensorrt(11))
    assert ten.weak_typing and ten.bf16_flag and ten.int8_calibration and ten.strongly_typed_flag
    assert not eleven.weak_typing and not eleven.bf16_flag and not eleven.int8_calibration
    assert eleven.strongly_typed_flag  # kept (ignored) in 11


def test_tensorrt_older_than_10_is_refused_with_the_reason():
    old = make_fake_tensorrt(10)
    old.__version__ = "8.6.1"
    with pytest.raises(EngineError, match=r"TensorRT 8.6.1 is too old.*10 or 11.*JetPack 6: TensorRT 10.3"):
        trt_api.check_version(old)
    trt_api.check_version(make_fake_tensorrt(11))


def test_dtype_names_include_bf16(trt):
    assert trt_api.dtype_name(trt.DataType.BF16) == "bfloat16"
    assert trt_api.dtype_name(trt.DataType.HALF) == "float16"
    assert trt_api.dtype_name(trt.DataType.BOOL) == "bool"


# ---------------------------------------------------------------- the DiT engine


def test_bf16_export_to_bf16_engine_is_strongly_typed_on_both(trt, tmp_path):
    summary = build(trt, dit_onnx(tmp_path / "dit_model.onnx"), tmp_path / "dit_bf16.engine", precision="bf16")
    _network, config, record = trt.built[-1]
    assert record["strongly_typed"] and record["flags"] == []
    assert summary["typing"] == "strong" and summary["onnx_precision"] == "bf16"
    assert record["outputs"] == {"output": "BF16"}


def test_fp16_engine_from_bf16_export_on_tensorrt_10_is_weak_with_fp32_output(tmp_path):
    trt = make_fake_tensorrt(10)
    summary = build(trt, dit_onnx(tmp_path / "dit_model.onnx"), tmp_path / "dit_model_fp16.engine",
                    precision="fp16", gpu=ORIN)
    network, _config, record = trt.built[-1]
    assert record["flags"] == ["FP16"] and not record["strongly_typed"]
    assert network.flags == 0
    assert record["outputs"] == {"output": "FLOAT"}, "FP32 output buffer for the FP32 Euler update"
    assert summary["typing"] == "weak" and summary["precision"] == "fp16"


def test_fp16_engine_from_bf16_export_on_tensorrt_11_is_refused_with_the_fix(tmp_path):
    trt = make_fake_tensorrt(11)
    with pytest.raises(EngineError, match=r"TensorRT 11.4.0.1 builds only strongly typed.*bf16.*modelopt.onnx.autocast"
                                          r".*--low_precision_type fp16.*TensorRT 10 \(JetPack 6\)"):
        build(trt, dit_onnx(tmp_path / "dit_model.onnx"), tmp_path / "e.engine", precision="fp16")
    assert trt.built == [] and not (tmp_path / "e.engine").exists()


def test_fp16_onnx_builds_fp16_on_tensorrt_11(tmp_path):
    trt = make_fake_tensorrt(11)
    build(trt, dit_onnx(tmp_path / "dit_fp16.onnx", TensorProto.FLOAT16), tmp_path / "e.engine", precision="fp16")
    network, _config, record = trt.built[-1]
    assert record["strongly_typed"] and record["outputs"] == {"output": "HALF"}
    assert network.flags == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_strongly_typed_flag_is_set_on_tensorrt_10(tmp_path):
    trt = make_fake_tensorrt(10)
    build(trt, dit_onnx(tmp_path / "d.onnx"), tmp_path / "e.engine", precision="bf16")
    network, _config, _record = trt.built[-1]
    assert network.flags == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_fp8_needs_sm89_and_qdq(trt, tmp_path):
    with pytest.raises(EngineError, match=r"fp8 needs a GPU of compute capability >= 8.9.*Orin \(sm_87\) has no FP8"):
        build(trt, dit_onnx(tmp_path / "d.onnx"), tmp_path / "e.engine", precision="fp8", gpu=ORIN)
    with pytest.raises(EngineError, match="FP8 Q/DQ nodes"):
        build(trt, dit_onnx(tmp_path / "d.onnx"), tmp_path / "e.engine", precision="fp8", gpu=H100)
    summary = build(trt, dit_onnx(tmp_path / "q.onnx", qdq=True), tmp_path / "e.engine", precision="fp8")
    assert summary["typing"] == "strong" and trt.built[-1][2]["flags"] == []


def test_bf16_needs_sm80(trt, tmp_path):
    with pytest.raises(EngineError, match=r"bf16 needs .* >= 8.0; Xavier is 7.2"):
        build(trt, dit_onnx(tmp_path / "d.onnx"), tmp_path / "e.engine", precision="bf16", gpu=("Xavier", (7, 2)))


def test_profile_and_sidecar(trt, tmp_path):
    engine = tmp_path / "dit_bf16.engine"
    cache = tmp_path / "timing.cache"
    build(trt, dit_onnx(tmp_path / "d.onnx"), engine, precision="bf16", max_batch=2, vl_seq_len=90,
          timing_cache=cache)
    profile = trt.built[-1][2]["profile"]
    assert profile["sa_embs"] == [[1, 17, 8], [1, 17, 8], [2, 17, 8]]
    assert profile["vl_embs"] == [[1, 1, 8], [1, 90, 8], [2, 180, 8]]
    assert profile["timestep"] == [[1], [1], [2]]
    assert profile["image_mask"] == [[1, 1], [1, 90], [2, 180]]
    facts = trt_api.read_sidecar(engine)
    assert facts["tensorrt_version"] == trt.__version__ and facts["compute_capability"] == [9, 0]
    assert facts["precision"] == "bf16" and facts["kind"] == "gr00t_n1d6_dit"
    assert cache.read_bytes() == b"+timings"
    assert not list(tmp_path.glob("*.tmp"))


def test_sequence_hints_from_export_metadata(trt, tmp_path):
    onnx_path = dit_onnx(tmp_path / "dit_model.onnx")
    with pytest.raises(EngineError, match="--sa-seq-len.*--vl-seq-len.*export_metadata.json"):
        dit_build.build_dit_engine(onnx_path, tmp_path / "e.engine", gpu=H100, precision="bf16", trt=trt)
    (tmp_path / "export_metadata.json").write_text(json.dumps({"sa_seq_len": 17, "vl_seq_len": 250}))
    dit_build.build_dit_engine(onnx_path, tmp_path / "e.engine", gpu=H100, precision="bf16", trt=trt)
    assert trt.built[-1][2]["profile"]["vl_embs"][1] == [1, 250, 8]


def test_not_a_dit_onnx(tmp_path):
    path = build_reference_policy(tmp_path / "policy.onnx")
    inputs, outputs, _ = dit_build.onnx_io(path)
    assert not dit_build.is_dit_onnx(inputs)
    with pytest.raises(EngineError, match="not a GR00T N1.6 DiT ONNX"):
        dit_build.check_dit_io(inputs, outputs)


def test_sidecar_refuses_other_tensorrt_or_gpu(tmp_path):
    engine = tmp_path / "e.engine"
    trt_api.write_sidecar(engine, {"tensorrt_version": "10.3.0.26", "gpu": "Orin", "compute_capability": [8, 7],
                                   "onnx": "dit_model.onnx"})
    trt_api.check_sidecar(engine, "10.3.0.26", "Orin", (8, 7))
    with pytest.raises(EngineError, match=r"built with TensorRT 10.3.0.26 but this machine has TensorRT 11.4.*"
                                          r"groot_build_engine dit_model.onnx"):
        trt_api.check_sidecar(engine, "11.4.0.1", "Orin", (8, 7))
    with pytest.raises(EngineError, match=r"built on Orin \(sm_87\) but this GPU is H100 \(sm_90\)"):
        trt_api.check_sidecar(engine, "10.3.0.26", "H100", (9, 0))


# ---------------------------------------------------------------- the CLI


def test_cli_builds_dit_with_default_name(trt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trt_api, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(build_engine, "_build_gpu", lambda device: H100)
    onnx_path = dit_onnx(tmp_path / "dit_model.onnx")
    args = [str(onnx_path), "--precision", "bf16", "--sa-seq-len", "17", "--vl-seq-len", "64"]
    assert build_engine.main(args) == 0
    assert (tmp_path / "dit_model_bf16.engine").is_file()
    assert "next: groot_check_engine" in capsys.readouterr().out


def test_cli_refuses_fp8_on_orin_with_exit_2(trt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trt_api, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(build_engine, "_build_gpu", lambda device: ORIN)
    assert build_engine.main([str(dit_onnx(tmp_path / "d.onnx")), "--precision", "fp8"]) == 2
    assert "no FP8 hardware" in capsys.readouterr().err


def test_cli_check_recognises_a_dit(tmp_path, capsys):
    assert build_engine.main([str(dit_onnx(tmp_path / "dit_model.onnx")), "--check"]) == 0
    assert "is a GR00T N1.6 DiT (bf16)" in capsys.readouterr().out


# ---------------------------------------------------------------- single-graph plans on both surfaces


def test_single_graph_plan_on_both_surfaces(trt, tmp_path, monkeypatch):
    from support.fake_cuda import FakeDevice
    from alfie_gr00t.engines import cuda_memory

    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(cuda_memory, "CudaDevice", FakeDevice)
    summary = tensorrt_engine.build_plan(build_reference_policy(tmp_path / "p.onnx"), tmp_path / "p.plan",
                                         fp16=True, config=EngineConfig(mock_mode=False), max_batch=2)
    network, _config, record = trt.built[-1]
    if trt.__version__.startswith("10"):
        assert record["flags"] == ["FP16"] and summary["precision"] == "fp16" and network.flags == 0
    else:
        assert record["flags"] == [] and record["strongly_typed"]
        assert summary["precision"].startswith("as typed in the ONNX")
    assert record["profile"]["state"] == [[1, 21], [1, 21], [2, 21]]


def test_single_graph_int8_on_tensorrt_11_is_refused(tmp_path, monkeypatch):
    from support.fake_cuda import FakeDevice
    from alfie_gr00t.engines import cuda_memory

    trt = make_fake_tensorrt(11)
    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(cuda_memory, "CudaDevice", FakeDevice)
    calib = tmp_path / "calib"
    calib.mkdir()
    np.savez(calib / "a.npz", state=np.zeros((1, 21), np.float32))
    with pytest.raises(EngineError, match="no implicit INT8 calibration.*Q/DQ"):
        tensorrt_engine.build_plan(build_reference_policy(tmp_path / "p.onnx"), tmp_path / "p.plan", int8=True,
                                   calibration_dir=calib, config=EngineConfig(mock_mode=False))
    assert trt.built == []
