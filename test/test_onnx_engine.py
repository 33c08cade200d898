"""The ONNX Runtime backend against the numpy twin of the reference policy (CPU provider)."""

import numpy as np
import pytest

from alfie_gr00t.engines.base import EngineConfig, EngineError, ObservationBatch, run_batched, warm_up
from alfie_gr00t.engines.onnx_engine import OnnxEngine, choose_providers

pytest.importorskip("onnx", reason="onnx (pip install onnx) builds the reference policy these tests run")
pytest.importorskip("onnxruntime", reason="onnxruntime (pip install onnxruntime) runs the ONNX engine")

from support.onnx_policy import build_reference_policy, random_batch, reference_actions

CONFIG = EngineConfig(mock_mode=False, device="cpu")
ATOL = 1e-4  # float32 pixel means over 268,800 values; real mistakes are ~0.1


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {
        (nchw, tokens): build_reference_policy(root / f"policy_{nchw}_{tokens}.onnx", nchw=nchw, with_tokens=tokens)
        for nchw in (False, True) for tokens in (False, True)
    }


@pytest.mark.parametrize("nchw", [False, True], ids=["uint8_nhwc", "float_nchw"])
@pytest.mark.parametrize("size", [1, 3])
def test_matches_numpy_reference(models, nchw, size):
    engine = OnnxEngine(CONFIG, models[(nchw, False)])
    batch = random_batch(size, seed=size)
    out = engine.infer(batch)
    assert out.actions.shape == (size, 16, 21)
    assert out.actions.dtype == np.float32
    np.testing.assert_allclose(out.actions, reference_actions(batch), atol=ATOL)
    assert set(out.stages_ms) == {"preprocess", "inference", "postprocess"}
    assert all(ms >= 0.0 for ms in out.stages_ms.values())


def test_batch_rows_are_independent(models):
    engine = OnnxEngine(CONFIG, models[(False, False)])
    batch = random_batch(3, seed=7)
    together = engine.infer(batch).actions
    for i in range(3):
        single = ObservationBatch({k: v[i:i + 1] for k, v in batch.images.items()}, batch.state[i:i + 1],
                                  batch.language[i:i + 1])
        np.testing.assert_allclose(engine.infer(single).actions[0], together[i], atol=1e-5)
    assert not np.allclose(together[0], together[1])


@pytest.mark.parametrize("nchw", [False, True], ids=["uint8_nhwc", "float_nchw"])
def test_every_camera_reaches_the_model(models, nchw):
    engine = OnnxEngine(CONFIG, models[(nchw, False)])
    batch = random_batch(1, seed=11)
    base = engine.infer(batch).actions
    for cam in batch.images:
        images = dict(batch.images, **{cam: np.zeros_like(batch.images[cam])})
        changed = engine.infer(ObservationBatch(images, batch.state, batch.language)).actions
        assert not np.allclose(changed, base, atol=1e-4), f"camera {cam} has no effect"


@pytest.mark.parametrize("nchw", [False, True], ids=["uint8_nhwc", "float_nchw"])
def test_language_tokens_reach_the_model(models, nchw):
    engine = OnnxEngine(CONFIG, models[(nchw, True)])
    assert engine.plan.token_length == 32
    batch = random_batch(2, seed=5, language=("pick up the can", "wave"))
    out = engine.infer(batch).actions
    np.testing.assert_allclose(out, reference_actions(batch, with_tokens=True), atol=ATOL)
    other = engine.infer(ObservationBatch(batch.images, batch.state, ("zzz", "wave"))).actions
    assert not np.allclose(other[0], out[0], atol=1e-4)
    np.testing.assert_allclose(other[1], out[1], atol=1e-6)


def test_dynamic_batch_gives_large_max_batch(models):
    engine = OnnxEngine(CONFIG, models[(False, False)])
    assert engine.max_batch_size >= 16
    batch = random_batch(20, seed=2)
    out = run_batched(engine, batch)
    np.testing.assert_allclose(out.actions, reference_actions(batch), atol=ATOL)


def test_fixed_batch_model(tmp_path):
    engine = OnnxEngine(CONFIG, build_reference_policy(tmp_path / "b2.onnx", batch=2))
    assert engine.max_batch_size == 2
    one = random_batch(1, seed=9)
    np.testing.assert_allclose(engine.infer(one).actions, reference_actions(one), atol=ATOL)
    five = random_batch(5, seed=10)
    out = run_batched(engine, five)
    assert out.actions.shape == (5, 16, 21)
    np.testing.assert_allclose(out.actions, reference_actions(five), atol=ATOL)


def test_warm_up_runs(models):
    engine = OnnxEngine(CONFIG, models[(True, False)])
    assert len(warm_up(engine, CONFIG, 3)) == 3


def test_describe_names_provider_and_contract(models):
    engine = OnnxEngine(EngineConfig(mock_mode=False, device="cuda:0"), models[(True, True)])
    info = engine.describe()
    assert info["backend"] == "onnxruntime"
    assert info["tensorrt"] is False
    assert info["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert info["provider"] == engine.provider
    assert "NCHW" in str(info["contract"]["images"])


def test_choose_providers():
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda:1", both) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert choose_providers("cuda", both)[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert choose_providers("cpu", both) == ["CPUExecutionProvider"]
    assert choose_providers("cuda:0", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(camera_names=("cam0", "cam1", "cam2", "cam3")), r"missing input\(s\) \['left_wide', 'right_wide'"),
    (dict(camera_names=("left_wide", "right_wide", "left_center")), r"missing input\(s\) \['right_center'\]"),
    (dict(state_dim=20), r"input 'state' is float32 \(\?, 20\)"),
    (dict(action_dim=20), r"output 'actions' is float32 \(\?, 16, 20\)"),
    (dict(horizon=8), r"output 'actions' is float32 \(\?, 8, 21\)"),
    (dict(output_name="action_pred"), "no output named 'actions'"),
    (dict(image_hw=(224, 224)), r"input 'left_wide' is uint8 \(\?, 224, 224, 3\)"),
])
def test_contract_violations_fail_at_load(tmp_path, kwargs, message):
    path = build_reference_policy(tmp_path / "bad.onnx", **kwargs)
    with pytest.raises(EngineError, match=message):
        OnnxEngine(CONFIG, path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        OnnxEngine(CONFIG, tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(EngineError, match="ONNX Runtime could not load"):
        OnnxEngine(CONFIG, junk)


def test_wrong_image_size_at_run_time_is_an_engine_error(models):
    engine = OnnxEngine(CONFIG, models[(False, False)])
    batch = random_batch(1)
    images = dict(batch.images, left_wide=np.zeros((1, 240, 320, 3), np.uint8))
    with pytest.raises(EngineError, match="camera 'left_wide'"):
        engine.infer(ObservationBatch(images, batch.state, batch.language))
