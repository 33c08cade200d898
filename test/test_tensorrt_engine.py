"""The TensorRT backend, the plan builder and groot_build_engine.

Real TensorRT runs only where tensorrt, pycuda and an NVIDIA GPU exist (skipped
elsewhere). Everywhere else the engine's own logic -- contract check, pinned staging
buffers, FP16 bindings, shape setting, stream ordering -- runs against a stand-in
TensorRT whose "plan" executes the reference ONNX with ONNX Runtime, and a stand-in
CUDA whose copies only land when the stream is synchronised: both fakes are in
test/support (fake_tensorrt.py, fake_cuda.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx (pip install onnx) builds the reference policy these tests run")
onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime (pip install onnxruntime) is the reference")

from alfie_gr00t import layout
from alfie_gr00t.tools import build_engine
from alfie_gr00t.engines import contract, cuda_memory, tensorrt_engine
from alfie_gr00t.engines.base import EngineConfig, EngineError, run_batched
from alfie_gr00t.engines.tensorrt_engine import TensorRTEngine, load_calibration_batches

from support.fake_cuda import FakeDevice
from support.fake_tensorrt import CALIBRATION_TABLE, FakeEngine, FakeRuntime, make_fake_tensorrt
from support.onnx_policy import build_reference_policy, random_batch, reference_actions

REPO = Path(__file__).resolve().parents[1]
CONFIG = EngineConfig(mock_mode=False, device="cuda:0")
NEEDS_GPU = "needs tensorrt + pycuda + an NVIDIA GPU"


def _gpu_ready() -> bool:
    try:
        import pycuda.driver as driver
        import tensorrt  # noqa: F401

        driver.init()
        return driver.Device.count() > 0
    except Exception:
        return False


needs_gpu = pytest.mark.skipif(not _gpu_ready(), reason=NEEDS_GPU)


@pytest.fixture
def fake_trt(monkeypatch):
    """fake_tensorrt's TensorRT 10 builder surface and stand-in runtime, on the stand-in CUDA."""
    trt = make_fake_tensorrt(10)
    trt.Runtime = FakeRuntime
    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(cuda_memory, "CudaDevice", FakeDevice)
    FakeDevice.instances.clear()
    return trt


def fake_plan(tmp_path, name="policy.plan", **spec_kwargs):
    """A stand-in plan: the reference ONNX plus the bindings the fake engine declares."""
    dtypes = spec_kwargs.pop("dtypes", {})
    max_batch = spec_kwargs.pop("max_batch", 4)
    onnx_path = build_reference_policy(tmp_path / (name + ".onnx"), **spec_kwargs)
    plan = tmp_path / name
    plan.write_text(json.dumps({"onnx": str(onnx_path), "dtypes": dtypes, "max_batch": max_batch}))
    return plan


# ---------------------------------------------------------------- engine logic on the stand-ins


@pytest.mark.parametrize("nchw", [False, True], ids=["uint8_nhwc", "float_nchw"])
@pytest.mark.parametrize("size", [1, 3])
def test_engine_runs_plan_and_matches_reference(fake_trt, tmp_path, nchw, size):
    engine = TensorRTEngine(CONFIG, fake_plan(tmp_path, nchw=nchw))
    assert engine.max_batch_size == 4
    batch = random_batch(size, seed=size)
    out = engine.infer(batch)
    assert out.actions.shape == (size, 16, 21) and out.actions.dtype == np.float32
    np.testing.assert_allclose(out.actions, reference_actions(batch), atol=1e-4)
    assert set(out.stages_ms) == {"preprocess", "inference", "postprocess"}


def test_fp16_bindings_are_converted(fake_trt, tmp_path):
    halves = {cam: "float16" for cam in layout.CAMERA_NAMES}
    halves.update(state="float16", actions="float16")
    engine = TensorRTEngine(CONFIG, fake_plan(tmp_path, nchw=True, dtypes=halves))
    assert {img.dtype for img in engine.plan.images} == {np.dtype(np.float16)}
    assert engine.plan.output_dtype == np.float16
    assert {a.dtype for a in FakeDevice.instances[-1].pinned} >= {np.dtype(np.float16)}
    batch = random_batch(2, seed=4)
    out = engine.infer(batch)
    assert out.actions.dtype == np.float32
    np.testing.assert_allclose(out.actions, reference_actions(batch), atol=5e-3)


def test_pinned_buffers_are_allocated_once_at_max_batch(fake_trt, tmp_path):
    engine = TensorRTEngine(CONFIG, fake_plan(tmp_path, with_tokens=True, max_batch=3))
    device = FakeDevice.instances[-1]
    sizes = sorted(a.size for a in device.pinned)
    assert len(device.pinned) == 7  # 4 cameras, state, language_tokens and actions
    assert 3 * 16 * 21 in sizes and 3 * 21 in sizes and 3 * 32 in sizes
    batch = random_batch(3, seed=1, language=("a", "bb", "ccc"))
    for _ in range(3):
        out = engine.infer(batch)
    assert len(device.pinned) == 7, "no allocation per call"
    np.testing.assert_allclose(out.actions, reference_actions(batch, with_tokens=True), atol=1e-4)


def test_batches_beyond_the_profile_are_split(fake_trt, tmp_path):
    engine = TensorRTEngine(CONFIG, fake_plan(tmp_path, max_batch=2))
    batch = random_batch(5, seed=3)
    with pytest.raises(EngineError, match="exceeds this plan's max batch 2"):
        engine.infer(batch)
    np.testing.assert_allclose(run_batched(engine, batch).actions, reference_actions(batch), atol=1e-4)


def test_contract_violation_in_plan(fake_trt, tmp_path):
    with pytest.raises(EngineError, match=r"input 'state' is float32 \(\?, 20\)"):
        TensorRTEngine(CONFIG, fake_plan(tmp_path, state_dim=20))
    assert FakeDevice.instances[-1].freed, "device memory is released when loading fails"


def test_unloadable_plan_is_a_plan_load_error(fake_trt, tmp_path):
    plan = tmp_path / "other_version.plan"
    plan.write_bytes(b"\x00serialized by another TensorRT")
    with pytest.raises(tensorrt_engine.PlanLoadError, match="rebuild it with groot_build_engine"):
        TensorRTEngine(CONFIG, plan)


def test_missing_plan_file(fake_trt, tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        TensorRTEngine(CONFIG, tmp_path / "none.plan")


def test_describe_and_close(fake_trt, tmp_path):
    engine = TensorRTEngine(CONFIG, fake_plan(tmp_path))
    info = engine.describe()
    assert info["backend"] == "tensorrt" and info["tensorrt"] is True
    assert info["gpu"] == "Fake GPU" and info["max_batch_size"] == 4
    engine.close()
    assert FakeDevice.instances[-1].freed
    engine.close()  # idempotent


# ---------------------------------------------------------------- build_plan on the stand-ins


def test_build_plan_flow_then_serve_the_plan(fake_trt, tmp_path):
    onnx_path = build_reference_policy(tmp_path / "policy.onnx", nchw=True)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    summary = tensorrt_engine.build_plan(onnx_path, tmp_path / "out" / "policy.plan", fp16=True, workspace_mb=512,
                                         timing_cache=cache, config=CONFIG, max_batch=3)
    network, cfg, _record = fake_trt.built[-1]
    assert network.flags == 0, "weakly typed: TensorRT 10 takes the precision flags"
    assert cfg.flags == {fake_trt.BuilderFlag.FP16}
    assert cfg.pool == {fake_trt.MemoryPoolType.WORKSPACE: 512 * 2**20}
    assert cfg.timing_cache.data == b"old"
    assert cache.read_bytes() == b"old+timings"
    assert cfg.profiles[0].shapes["left_wide"] == ((1, 3, 280, 320), (1, 3, 280, 320), (3, 3, 280, 320))
    assert summary["precision"] == "fp16"
    assert summary["profile"]["state"] == [[1, 21], [1, 21], [3, 21]]
    assert summary["inputs"]["left_wide"] == {"shape": [-1, 3, 280, 320], "dtype": "float32"}
    assert summary["size_bytes"] == (tmp_path / "out" / "policy.plan").stat().st_size
    assert not list((tmp_path / "out").glob("*.tmp"))
    assert FakeDevice.instances[-1].freed
    engine = TensorRTEngine(CONFIG, summary["plan"])
    assert engine.max_batch_size == 3 and engine.plan.output_dtype == np.float32  # I/O keeps the ONNX's types
    batch = random_batch(2, seed=12)
    np.testing.assert_allclose(engine.infer(batch).actions, reference_actions(batch), atol=5e-3)


def test_build_plan_fp32_without_timing_cache(fake_trt, tmp_path):
    summary = tensorrt_engine.build_plan(build_reference_policy(tmp_path / "p.onnx"), tmp_path / "p.plan",
                                         fp16=False, config=CONFIG)
    assert summary["precision"] == "fp32" and summary["timing_cache"] is None
    network, cfg, _record = fake_trt.built[-1]
    assert network.flags == 0 and cfg.flags == set()
    assert cfg.profiles[0].shapes["state"][2] == (tensorrt_engine.DEFAULT_MAX_BATCH, 21)


def test_build_plan_int8_calibrates_from_npz(fake_trt, tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        save_observations(calib / f"obs{i}.npz", 2, seed=i)
    plan_path = tmp_path / "policy.int8.plan"
    summary = tensorrt_engine.build_plan(build_reference_policy(tmp_path / "policy.onnx"), plan_path, int8=True,
                                         calibration_dir=calib, config=CONFIG)
    _network, cfg, record = fake_trt.built[-1]
    assert summary["precision"] == "int8+fp16"
    assert cfg.flags == {fake_trt.BuilderFlag.FP16, fake_trt.BuilderFlag.INT8}
    assert cfg.calibration_profile.shapes["state"] == ((2, 21),) * 3
    calibration = record["calibration"]
    assert not calibration["from_cache"] and len(calibration["batches"]) == 3
    assert all(len(pointers) == 5 for pointers in calibration["batches"])
    assert (tmp_path / "policy.int8.calib").read_bytes() == CALIBRATION_TABLE
    tensorrt_engine.build_plan(build_reference_policy(tmp_path / "policy.onnx"), plan_path, int8=True,
                               calibration_dir=calib, config=CONFIG)
    assert fake_trt.built[-1][2]["calibration"] == {"from_cache": True, "batches": []}, "the table is reused"


def test_build_plan_reports_parser_and_contract_errors(fake_trt, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(EngineError, match="TensorRT could not parse .*junk.onnx"):
        tensorrt_engine.build_plan(junk, tmp_path / "j.plan", config=CONFIG)
    with pytest.raises(EngineError, match="output 'actions'"):
        tensorrt_engine.build_plan(build_reference_policy(tmp_path / "bad.onnx", horizon=4), tmp_path / "b.plan",
                                   config=CONFIG)
    assert not (tmp_path / "b.plan").exists()
    with pytest.raises(EngineError, match="--int8 needs --calibration-data"):
        tensorrt_engine.build_plan(build_reference_policy(tmp_path / "ok.onnx"), tmp_path / "o.plan", int8=True)


def test_build_engine_cli_builds_with_stand_ins(fake_trt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cuda_memory, "import_pycuda", lambda: None)
    onnx_path = build_reference_policy(tmp_path / "policy.onnx")
    assert build_engine.main([str(onnx_path), "--fp16", "--max-batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "built " in out and "policy.fp16.plan (fp16" in out
    assert (tmp_path / "policy.fp16.plan").is_file()


# ---------------------------------------------------------------- pure helpers (no TensorRT needed)


def test_module_imports_without_tensorrt_and_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match="TensorRT is not installed.*pip install tensorrt"):
        tensorrt_engine.import_tensorrt()
    with pytest.raises(EngineError, match="pip install tensorrt"):
        TensorRTEngine(CONFIG, "/no/such.plan")


def test_pycuda_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(EngineError, match="pip install pycuda"):
        cuda_memory.CudaDevice("cuda:0")


def test_device_index():
    assert cuda_memory.device_index("cuda") == 0
    assert cuda_memory.device_index("cuda:2") == 2
    with pytest.raises(EngineError, match="not a CUDA device"):
        cuda_memory.device_index("cpu")


def test_engine_specs_reads_the_tensor_api(tmp_path):
    engine = FakeEngine({"onnx": str(build_reference_policy(tmp_path / "p.onnx", with_tokens=True)),
                         "dtypes": {"actions": "float16"}})
    inputs, outputs = tensorrt_engine.engine_specs(make_fake_tensorrt(10), engine)
    assert [s.name for s in inputs] == [*layout.CAMERA_NAMES, "state", "language_tokens"]
    assert outputs[0].name == "actions" and outputs[0].dtype == np.float16
    assert outputs[0].shape == (-1, 16, 21)


def save_observations(path, size, seed=0, with_language=True, drop=None):
    batch = random_batch(size, seed=seed)
    arrays = dict(batch.images, state=batch.state)
    if with_language:
        arrays["language"] = np.array(["pick up the can"] * size)
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)
    return batch


@pytest.mark.parametrize("image", ["nhwc", "nchw"])
def test_calibration_batches_follow_the_contract(tmp_path, image):
    from support.tensor_specs import specs

    plan = contract.check_contract(*specs(image=image, tokens=8), CONFIG)
    first = save_observations(tmp_path / "a.npz", 2, seed=1)
    save_observations(tmp_path / "b.npz", 2, seed=2, with_language=False)
    batches = load_calibration_batches(tmp_path, plan, CONFIG)
    assert len(batches) == 2
    assert set(batches[0]) == set(plan.input_names)
    left = batches[0]["left_wide"]
    if image == "nchw":
        assert left.shape == (2, 3, 280, 320) and left.dtype == np.float32
        assert left.max() <= 1.0
    else:
        assert np.array_equal(left, first.images["left_wide"])
    assert batches[0]["language_tokens"][0, :4].tolist() == [112, 105, 99, 107]  # "pick"
    assert batches[1]["language_tokens"].sum() == 0


def test_calibration_data_errors(tmp_path):
    from support.tensor_specs import specs

    plan = contract.check_contract(*specs(), CONFIG)
    with pytest.raises(EngineError, match="no .npz calibration files"):
        load_calibration_batches(tmp_path, plan, CONFIG)
    save_observations(tmp_path / "a.npz", 2, drop="right_center")
    with pytest.raises(EngineError, match=r"a.npz lacks \['right_center'\]"):
        load_calibration_batches(tmp_path, plan, CONFIG)
    save_observations(tmp_path / "a.npz", 2)
    save_observations(tmp_path / "b.npz", 3)
    with pytest.raises(EngineError, match="different batch sizes"):
        load_calibration_batches(tmp_path, plan, CONFIG)


# ---------------------------------------------------------------- groot_build_engine


def test_build_engine_check_accepts_reference(tmp_path, capsys):
    path = build_reference_policy(tmp_path / "policy.onnx", nchw=True, with_tokens=True)
    assert build_engine.main([str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "follows the alfie_gr00t contract" in out
    report = json.loads(out[out.index("{"):])
    assert report["plan"]["max_batch_size"] == contract.DYNAMIC_MAX_BATCH
    assert report["inputs"]["left_wide"] == [[-1, 3, 280, 320], "float32"]
    assert report["outputs"]["actions"] == [[-1, 16, 21], "float32"]
    assert report["plan"]["language_tokens"] == "32 x int64"


def test_build_engine_check_rejects_violation(tmp_path, capsys):
    path = build_reference_policy(tmp_path / "bad.onnx", action_dim=20)
    assert build_engine.main([str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "contract check FAILED" in err and "output 'actions'" in err


def test_build_engine_check_ignores_initializers_listed_as_inputs(tmp_path, capsys):
    path = build_reference_policy(tmp_path / "old_style.onnx")
    model = onnx.load(str(path))
    weight = next(i for i in model.graph.initializer if i.name == "W")
    model.graph.input.append(onnx.helper.make_tensor_value_info("W", weight.data_type, list(weight.dims)))
    onnx.save(model, str(path))
    inputs, _ = build_engine.onnx_specs(path)
    assert "W" not in [s.name for s in inputs]
    assert build_engine.main([str(path), "--check"]) == 0


def test_build_engine_without_tensorrt_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path = build_reference_policy(tmp_path / "policy.onnx")
    assert build_engine.main([str(path), "-o", str(tmp_path / "p.plan"), "--fp16"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "pip install tensorrt" in err
    assert not (tmp_path / "p.plan").exists()


def test_build_engine_argument_errors(tmp_path, capsys):
    assert build_engine.main([str(tmp_path / "missing.onnx"), "--check"]) == 2
    path = build_reference_policy(tmp_path / "policy.onnx")
    assert build_engine.main([str(path), "--int8"]) == 2
    assert "--calibration-data" in capsys.readouterr().err


def test_default_output_names():
    assert build_engine.default_output(Path("m.onnx"), True, False) == Path("m.fp16.plan")
    assert build_engine.default_output(Path("m.onnx"), True, True) == Path("m.int8.plan")
    assert build_engine.default_output(Path("m.onnx"), False, False) == Path("m.plan")


def test_build_engine_runs_as_a_module(tmp_path):
    path = build_reference_policy(tmp_path / "policy.onnx")
    result = subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.build_engine", str(path), "--check"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "follows the alfie_gr00t contract" in result.stdout


# ---------------------------------------------------------------- real TensorRT (GPU machines only)


@needs_gpu
@pytest.mark.parametrize("nchw", [False, True], ids=["uint8_nhwc", "float_nchw"])
def test_real_fp16_plan_matches_reference(tmp_path, nchw):
    onnx_path = build_reference_policy(tmp_path / "policy.onnx", nchw=nchw, with_tokens=True)
    cache = tmp_path / "timing.cache"
    summary = tensorrt_engine.build_plan(onnx_path, tmp_path / "policy.plan", fp16=True, timing_cache=cache,
                                         config=CONFIG, max_batch=4)
    assert summary["precision"] == "fp16" and summary["size_bytes"] > 0
    assert summary["profile"]["state"] == [[1, 21], [1, 21], [4, 21]]
    assert cache.stat().st_size > 0
    engine = TensorRTEngine(CONFIG, tmp_path / "policy.plan")
    try:
        assert engine.max_batch_size == 4
        for size in (1, 3):
            batch = random_batch(size, seed=size, language=("pick up the can",) * size)
            out = engine.infer(batch)
            np.testing.assert_allclose(out.actions, reference_actions(batch, with_tokens=True), atol=2e-2)
    finally:
        engine.close()


@needs_gpu
def test_real_int8_plan_builds_from_calibration_data(tmp_path):
    onnx_path = build_reference_policy(tmp_path / "policy.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        save_observations(calib / f"obs{i}.npz", 2, seed=i)
    summary = tensorrt_engine.build_plan(onnx_path, tmp_path / "int8.plan", fp16=True, int8=True,
                                         calibration_dir=calib, config=CONFIG)
    assert summary["precision"] == "int8+fp16"
    engine = TensorRTEngine(CONFIG, tmp_path / "int8.plan")
    try:
        out = engine.infer(random_batch(1))
        assert out.actions.shape == (1, 16, 21) and np.all(np.isfinite(out.actions))
    finally:
        engine.close()


@needs_gpu
def test_real_registry_builds_and_caches_plan(tmp_path):
    from alfie_gr00t.engines.registry import create_engine

    onnx_path = build_reference_policy(tmp_path / "model.onnx")
    engine = create_engine(EngineConfig(mock_mode=False, model_checkpoint=str(onnx_path), use_tensorrt=True))
    try:
        assert (tmp_path / "model.fp16.plan").is_file()
        assert engine.describe()["tensorrt"] is True
        batch = random_batch(1)
        np.testing.assert_allclose(engine.infer(batch).actions, reference_actions(batch), atol=2e-2)
    finally:
        engine.close()
