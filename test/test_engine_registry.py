"""Engine selection: what each model_checkpoint loads, the startup errors, the plan cache."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from alfie_gr00t.engines import registry
from alfie_gr00t.engines.base import EngineConfig, EngineError
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.engines.onnx_engine import OnnxEngine

pytest.importorskip("onnx", reason="onnx (pip install onnx) builds the reference policy these tests run")
pytest.importorskip("onnxruntime", reason="onnxruntime (pip install onnxruntime) runs the ONNX engine")

from support.onnx_policy import build_reference_policy, random_batch, reference_actions

REPO = Path(__file__).resolve().parents[1]


def config(checkpoint="", **kw):
    return EngineConfig(mock_mode=False, model_checkpoint=str(checkpoint), **kw)


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make `import tensorrt` fail, whatever is installed on this machine."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def gr00t_checkpoint(root: Path) -> Path:
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "Gr00tN1d6"}')
    (root / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 16)
    (root / "experiment_cfg").mkdir()
    return root


def test_mock_mode_gives_mock_engine_even_with_a_checkpoint():
    engine = registry.create_engine(EngineConfig(mock_mode=True, model_checkpoint="/does/not/matter.onnx"))
    assert isinstance(engine, MockEngine)


def test_empty_checkpoint_without_mock_mode():
    with pytest.raises(EngineError) as err:
        registry.create_engine(config(""))
    assert "model_checkpoint is empty" in str(err.value)
    assert "mock_mode:=true" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(EngineError, match=r"model_checkpoint .*nope\.onnx does not exist.*mock_mode:=true"):
        registry.create_engine(config(tmp_path / "nope.onnx"))


def test_unknown_suffix_pth(tmp_path):
    weights = tmp_path / "groot_alfiebot_latest.pth"
    weights.write_bytes(b"\0")
    with pytest.raises(EngineError) as err:
        registry.create_engine(config(weights))
    text = str(err.value)
    assert "suffix '.pth'" in text and "bare PyTorch weights file" in text
    assert ".onnx" in text and ".engine/.plan" in text and "mock_mode:=true" in text


def test_unknown_suffix_without_extension(tmp_path):
    blob = tmp_path / "model"
    blob.write_bytes(b"\0")
    with pytest.raises(EngineError, match="suffix '<none>'"):
        registry.create_engine(config(blob))


def test_directory_that_is_not_a_gr00t_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(EngineError, match=r"not an Isaac-GR00T checkpoint: expected config.json .*\['notes.txt'\]"):
        registry.create_engine(config(tmp_path))


def test_config_json_alone_is_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert not registry.is_gr00t_checkpoint(tmp_path)


def test_gr00t_directory_is_recognised_and_needs_gr00t(tmp_path, monkeypatch):
    ckpt = gr00t_checkpoint(tmp_path / "ckpt")
    assert registry.classify_checkpoint(ckpt) == "gr00t"
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EngineError, match="torch is not installed.*Isaac-GR00T"):
        registry.create_engine(config(ckpt, device="cpu"))


def test_plan_without_tensorrt_names_tensorrt(tmp_path, no_tensorrt):
    for name in ("policy.engine", "policy.plan"):
        plan = tmp_path / name
        plan.write_bytes(b"\0" * 8)
        with pytest.raises(EngineError, match=r"TensorRT is not installed.*pip install tensorrt"):
            registry.create_engine(config(plan))


def test_plan_needs_a_cuda_device(tmp_path):
    plan = tmp_path / "policy.engine"
    plan.write_bytes(b"\0")
    with pytest.raises(EngineError, match="TensorRT runs only on an NVIDIA GPU but device is 'cpu'"):
        registry.create_engine(config(plan, device="cpu"))


def test_onnx_loads_onnx_runtime_and_serves(tmp_path):
    path = build_reference_policy(tmp_path / "policy.onnx", nchw=True)
    engine = registry.create_engine(config(path, device="cpu"))
    assert isinstance(engine, OnnxEngine)
    batch = random_batch(2)
    np.testing.assert_allclose(engine.infer(batch).actions, reference_actions(batch), atol=1e-4)


def test_onnx_with_use_tensorrt_without_tensorrt(tmp_path, no_tensorrt):
    path = build_reference_policy(tmp_path / "policy.onnx")
    with pytest.raises(EngineError, match="TensorRT is not installed.*use_tensorrt:=false"):
        registry.create_engine(config(path, use_tensorrt=True))
    assert not (tmp_path / "policy.fp16.plan").exists()


def test_cached_plan_path_and_staleness(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    assert registry.cached_plan_path(onnx_path) == tmp_path / "model.fp16.plan"
    onnx_path.write_bytes(b"x")
    plan = registry.cached_plan_path(onnx_path)
    assert registry.plan_is_stale(onnx_path, plan)
    plan.write_bytes(b"p")
    os.utime(onnx_path, (1000, 1000))
    os.utime(plan, (2000, 2000))
    assert not registry.plan_is_stale(onnx_path, plan)
    os.utime(onnx_path, (3000, 3000))
    assert registry.plan_is_stale(onnx_path, plan)


class Recorder:
    """Stands in for tensorrt_engine.build_plan / TensorRTEngine to observe the cache logic."""

    def __init__(self, fail_first_load=False):
        self.builds, self.loads, self.fail_first_load = [], [], fail_first_load

    def build_plan(self, onnx_path, plan_path, fp16=True, **kw):
        self.builds.append((Path(onnx_path), Path(plan_path), fp16))
        Path(plan_path).write_bytes(b"plan")
        return {"seconds": 0.0, "size_bytes": 4}

    def engine(self, cfg, plan_path):
        from alfie_gr00t.engines.tensorrt_engine import PlanLoadError

        self.loads.append(Path(plan_path))
        if self.fail_first_load and len(self.loads) == 1:
            raise PlanLoadError("built by another TensorRT")
        return ("trt-engine", Path(plan_path))


@pytest.fixture
def recorder(monkeypatch):
    from alfie_gr00t.engines import tensorrt_engine

    rec = Recorder()
    monkeypatch.setattr(tensorrt_engine, "build_plan", rec.build_plan)
    monkeypatch.setattr(tensorrt_engine, "TensorRTEngine", rec.engine)
    return rec


def test_use_tensorrt_builds_fp16_plan_once_and_rebuilds_when_onnx_is_newer(tmp_path, recorder):
    onnx_path = build_reference_policy(tmp_path / "model.onnx")
    plan = tmp_path / "model.fp16.plan"
    assert registry.create_engine(config(onnx_path, use_tensorrt=True)) == ("trt-engine", plan)
    assert recorder.builds == [(onnx_path, plan, True)]
    registry.create_engine(config(onnx_path, use_tensorrt=True))
    assert len(recorder.builds) == 1, "a fresh cached plan must be reused"
    os.utime(plan, (1000, 1000))
    registry.create_engine(config(onnx_path, use_tensorrt=True))
    assert len(recorder.builds) == 2, "an ONNX newer than the plan must trigger a rebuild"
    assert recorder.loads == [plan, plan, plan]


def test_cached_plan_that_does_not_load_is_rebuilt_once(tmp_path, recorder):
    recorder.fail_first_load = True
    onnx_path = build_reference_policy(tmp_path / "model.onnx")
    plan = registry.cached_plan_path(onnx_path)
    plan.write_bytes(b"old")
    os.utime(onnx_path, (1000, 1000))
    assert registry.create_engine(config(onnx_path, use_tensorrt=True)) == ("trt-engine", plan)
    assert len(recorder.builds) == 1 and len(recorder.loads) == 2


def test_gr00t_directory_with_use_tensorrt_takes_the_dit_engine_path(tmp_path, monkeypatch):
    """use_tensorrt on a checkpoint directory is NVIDIA's TensorRT DiT path now, not ignored: without
    torch it fails with a message that says what is missing."""
    ckpt = gr00t_checkpoint(tmp_path / "ckpt")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EngineError, match="(?i)torch|engine|gpu"):
        registry.create_engine(config(ckpt, use_tensorrt=True, device="cpu"))


def test_gr00t_log_line_names_the_dit_backend_that_runs(tmp_path, monkeypatch, caplog):
    """An ONNX DiT (dit_engine_path:=...onnx) was logged as 'DiT in PyTorch' before the swap said onnxruntime."""
    assert registry.dit_backend_label(config("x", dit_engine_path="/m/dit_model_fp32.onnx")) == "onnxruntime"
    assert registry.dit_backend_label(config("x", dit_engine_path="/m/dit.onnx", use_tensorrt=True)) == "onnxruntime"
    assert registry.dit_backend_label(config("x", dit_engine_path="/m/dit_fp16.engine")) == "TensorRT"
    assert registry.dit_backend_label(config("x", tensorrt_engine_path="/m/dit_fp16.engine")) == "TensorRT"
    assert registry.dit_backend_label(config("x", use_tensorrt=True)) == "TensorRT"
    assert registry.dit_backend_label(config("x")) == "PyTorch"
    ckpt = gr00t_checkpoint(tmp_path / "ckpt")
    monkeypatch.setitem(sys.modules, "torch", None)
    with caplog.at_level("INFO", logger=registry.log.name), pytest.raises(EngineError):
        registry.create_engine(config(ckpt, device="cpu", dit_engine_path=str(tmp_path / "dit_model_fp32.onnx")))
    assert "(DiT in onnxruntime)" in caplog.text


def test_registry_imports_with_numpy_only(tmp_path):
    """Heavy libraries are imported lazily: the registry loads with all of them blocked."""
    script = textwrap.dedent("""
        import sys
        BLOCKED = {"onnxruntime", "onnx", "tensorrt", "pycuda", "torch", "gr00t", "cv2", "zmq", "msgpack"}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        from alfie_gr00t.engines import registry
        from alfie_gr00t.engines.base import EngineConfig, EngineError
        engine = registry.create_engine(EngineConfig(mock_mode=True))
        assert engine.name == "mock"
        try:
            registry.create_engine(EngineConfig(mock_mode=False, model_checkpoint=sys.argv[1]))
        except EngineError as exc:
            assert "pip install onnxruntime" in str(exc), exc
        else:
            raise SystemExit("expected EngineError")
        print("ok")
    """)
    onnx_file = tmp_path / "probe.onnx"
    onnx_file.write_bytes(b"not read")
    result = subprocess.run([sys.executable, "-c", script, str(onnx_file)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("policy, named", [("hold", "mock (hold position)"), ("trajectory", "mock (trajectory")])
def test_the_log_names_the_mock_policy_that_runs(policy, named, caplog):
    caplog.set_level("INFO", logger=registry.log.name)
    engine = registry.create_engine(EngineConfig(mock_mode=True, mock_policy=policy))
    assert engine.policy == policy
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine:")]
    assert len(lines) == 1 and named in lines[0], lines
    assert ("hold position" in lines[0]) == (policy == "hold")
