"""The single-graph I/O contract: checks, conversions and the byte tokenizer (pure numpy)."""

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.engines import contract
from alfie_gr00t.engines.base import EngineConfig, EngineError, ObservationBatch
from alfie_gr00t.engines.contract import TensorSpec, check_contract, encode_text, prepare_inputs, read_actions

from support.onnx_policy import random_batch
from support.tensor_specs import specs

CONFIG = EngineConfig(mock_mode=False)
H, W = layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH


def test_tensor_spec_normalises_dynamic_dims():
    spec = TensorSpec.of("x", ("batch", None, -1, 3), "float32")
    assert spec.shape == (-1, -1, -1, 3)
    assert spec.dtype == np.float32


@pytest.mark.parametrize("image, layout_name, dtype", [
    ("nhwc", "nhwc", np.uint8), ("nchw", "nchw", np.float32), ("nchw16", "nchw", np.float16)])
def test_accepts_both_image_layouts(image, layout_name, dtype):
    plan = check_contract(*specs(image=image), CONFIG)
    assert [img.camera for img in plan.images] == list(layout.CAMERA_NAMES)
    assert {img.layout for img in plan.images} == {layout_name}
    assert {img.dtype for img in plan.images} == {np.dtype(dtype)}
    assert plan.fixed_batch is None
    assert plan.max_batch_size == contract.DYNAMIC_MAX_BATCH
    assert plan.token_length is None


def test_fixed_batch_sets_max_batch_size():
    inputs, outputs = specs(batch=4, state=(4, 21), actions=(4, 16, 21))
    plan = check_contract(inputs, outputs, CONFIG)
    assert plan.fixed_batch == 4 and plan.max_batch_size == 4


def test_conflicting_fixed_batches_are_rejected():
    inputs, outputs = specs(batch=4, state=(2, 21))
    with pytest.raises(EngineError, match="different fixed batch sizes"):
        check_contract(inputs, outputs, CONFIG)


def test_wrong_input_names_list_missing_and_unexpected():
    inputs, outputs = specs(cameras=("left_wide", "right_wide", "left_center", "image"))
    with pytest.raises(EngineError) as err:
        check_contract(inputs, outputs, CONFIG)
    text = str(err.value)
    assert "missing input(s) ['right_center']" in text
    assert "unexpected input(s) ['image']" in text
    assert "left_wide" in text and "docs/checkpoint.md" in text


def test_missing_camera_is_named():
    inputs, outputs = specs(cameras=layout.CAMERA_NAMES[:3])
    with pytest.raises(EngineError, match=r"missing input\(s\) \['right_center'\]"):
        check_contract(inputs, outputs, CONFIG)


def test_missing_state_is_named():
    inputs, outputs = specs()
    with pytest.raises(EngineError, match=r"missing input\(s\) \['state'\]"):
        check_contract([s for s in inputs if s.name != "state"], outputs, CONFIG)


def test_wrong_state_width():
    with pytest.raises(EngineError, match=r"input 'state' is float32 \(\?, 20\): expected .*\(B, 21\)"):
        check_contract(*specs(state=("B", 20)), CONFIG)


def test_integer_state_is_rejected():
    with pytest.raises(EngineError, match="input 'state'"):
        check_contract(*specs(state_dtype=np.int32), CONFIG)


@pytest.mark.parametrize("actions", [("B", 16, 20), ("B", 8, 21), ("B", 16 * 21)])
def test_wrong_output_size(actions):
    with pytest.raises(EngineError, match=r"output 'actions' .*expected float \(B, 16, 21\)"):
        check_contract(*specs(actions=actions), CONFIG)


def test_longer_horizon_output_is_accepted():
    plan = check_contract(*specs(actions=("B", 32, 21)), CONFIG)
    assert plan.output_horizon == 32


def test_missing_actions_output():
    inputs, _ = specs()
    with pytest.raises(EngineError, match="no output named 'actions'"):
        check_contract(inputs, [TensorSpec.of("action_pred", ("B", 16, 21), np.float32)], CONFIG)


def test_extra_outputs_are_ignored():
    inputs, outputs = specs()
    plan = check_contract(inputs, outputs + [TensorSpec.of("debug", ("B", 7), np.float32)], CONFIG)
    assert plan.output_dtype == np.float32


@pytest.mark.parametrize("shape, dtype", [
    (("B", 3, H, W), np.uint8),        # uint8 must be NHWC
    (("B", H, W, 3), np.float32),      # float must be NCHW
    (("B", 224, 224, 3), np.uint8),    # wrong resolution
    (("B", H, W), np.uint8),           # wrong rank
])
def test_bad_camera_input(shape, dtype):
    inputs, outputs = specs()
    inputs[1] = TensorSpec.of("right_wide", shape, dtype)
    with pytest.raises(EngineError, match=r"input 'right_wide' .*uint8 \(B, 280, 320, 3\) NHWC .*\(B, 3, 280, 320\) NCHW"):
        check_contract(inputs, outputs, CONFIG)


def test_dynamic_spatial_dims_are_fed_at_config_size():
    inputs, outputs = specs()
    inputs[0] = TensorSpec.of("left_wide", ("B", "h", "w", 3), np.uint8)
    plan = check_contract(inputs, outputs, CONFIG)
    assert plan.input_shapes(2)["left_wide"] == (2, H, W, 3)


def test_tokens_input():
    plan = check_contract(*specs(tokens=24), CONFIG)
    assert plan.token_length == 24
    assert "language_tokens" in plan.input_names
    dynamic = check_contract(*specs(tokens="L"), CONFIG)
    assert dynamic.token_length == contract.DEFAULT_TOKEN_LENGTH
    inputs, outputs = specs()
    inputs.append(TensorSpec.of("language_tokens", ("B", 8), np.float32))
    with pytest.raises(EngineError, match="input 'language_tokens'.*int64/int32"):
        check_contract(inputs, outputs, CONFIG)


def test_custom_camera_names_come_from_config():
    config = EngineConfig(mock_mode=False, camera_names=("front", "wrist"))
    plan = check_contract(*specs(cameras=("front", "wrist")), config)
    assert [img.name for img in plan.images] == ["front", "wrist"]
    with pytest.raises(EngineError, match="missing input"):
        check_contract(*specs(), config)


def test_input_shapes_for_profiles():
    plan = check_contract(*specs(image="nchw", tokens=16), CONFIG)
    shapes = plan.input_shapes(3)
    assert shapes["left_wide"] == (3, 3, H, W)
    assert shapes["state"] == (3, 21)
    assert shapes["language_tokens"] == (3, 16)


def test_encode_text_is_byte_level_and_padded():
    assert encode_text("ab", 5).tolist() == [97, 98, 0, 0, 0]
    assert encode_text("é", 3).tolist() == [195, 169, 0]
    assert encode_text("abcdef", 3).tolist() == [97, 98, 99]
    assert encode_text("a\x00b", 3).tolist() == [97, 98, 0]
    assert encode_text("", 2).dtype == np.int64
    assert np.array_equal(encode_text("pick", 8), encode_text("pick", 8))


def test_prepare_nhwc_passes_images_through():
    plan = check_contract(*specs(), CONFIG)
    batch = random_batch(2)
    feeds = prepare_inputs(batch, plan)
    assert set(feeds) == {*layout.CAMERA_NAMES, "state"}
    for cam in layout.CAMERA_NAMES:
        assert feeds[cam].dtype == np.uint8
        assert np.array_equal(feeds[cam], batch.images[cam])
    assert feeds["state"].dtype == np.float32
    assert np.array_equal(feeds["state"], batch.state)


@pytest.mark.parametrize("image, dtype, tol", [("nchw", np.float32, 1e-7), ("nchw16", np.float16, 1e-3)])
def test_prepare_nchw_transposes_and_scales(image, dtype, tol):
    plan = check_contract(*specs(image=image, state_dtype=np.float16), CONFIG)
    batch = random_batch(2, seed=3)
    feeds = prepare_inputs(batch, plan)
    img = feeds["right_center"]
    assert img.dtype == dtype and img.shape == (2, 3, H, W)
    src = batch.images["right_center"]
    expected = src.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    assert np.max(np.abs(img.astype(np.float64) - expected)) <= tol
    assert img[1, 2, 10, 20] == pytest.approx(src[1, 10, 20, 2] / 255.0, abs=tol)
    assert feeds["state"].dtype == np.float16


def test_prepare_encodes_language_per_observation():
    plan = check_contract(*specs(tokens=6), CONFIG)
    batch = random_batch(2, language=("go", "stop"))
    tokens = prepare_inputs(batch, plan)["language_tokens"]
    assert tokens.dtype == np.int64
    assert tokens.tolist() == [[103, 111, 0, 0, 0, 0], [115, 116, 111, 112, 0, 0]]


def test_prepare_pads_fixed_batch_and_read_drops_padding():
    inputs, outputs = specs(batch=4, state=(4, 21), actions=(4, 16, 21))
    plan = check_contract(inputs, outputs, CONFIG)
    batch = random_batch(2)
    feeds = prepare_inputs(batch, plan)
    assert feeds["state"].shape == (4, 21)
    assert np.array_equal(feeds["state"][2], batch.state[1])
    assert np.array_equal(feeds["left_wide"][3], batch.images["left_wide"][1])
    actions = np.arange(4 * 16 * 21, dtype=np.float32).reshape(4, 16, 21)
    out = read_actions({"actions": actions}, plan, CONFIG, batch_size=2)
    assert out.shape == (2, 16, 21)
    with pytest.raises(EngineError, match="exceeds the model's fixed batch size 4"):
        prepare_inputs(random_batch(5), plan)


def test_prepare_rejects_wrong_image_size_and_missing_camera():
    plan = check_contract(*specs(), CONFIG)
    batch = random_batch(1)
    small = dict(batch.images, left_center=np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(EngineError, match="camera 'left_center' image .*resizes"):
        prepare_inputs(ObservationBatch(small, batch.state, batch.language), plan)
    missing = {k: v for k, v in batch.images.items() if k != "left_wide"}
    with pytest.raises(EngineError, match="no image for camera 'left_wide'"):
        prepare_inputs(ObservationBatch(missing, batch.state, batch.language), plan)
    with pytest.raises(EngineError, match="state has shape"):
        prepare_inputs(ObservationBatch(batch.images, np.zeros((1, 20), np.float32), batch.language), plan)


def test_read_actions_takes_first_steps_and_casts():
    plan = check_contract(*specs(actions=("B", 20, 21), action_dtype=np.float16), CONFIG)
    raw = np.random.default_rng(0).standard_normal((3, 20, 21)).astype(np.float16)
    out = read_actions({"actions": raw, "other": np.zeros(1)}, plan, CONFIG)
    assert out.dtype == np.float32 and out.shape == (3, 16, 21)
    assert np.array_equal(out, raw[:, :16].astype(np.float32))


def test_read_actions_rejects_bad_outputs():
    plan = check_contract(*specs(), CONFIG)
    bad = np.zeros((1, 16, 21), np.float32)
    bad[0, 3, 4] = np.nan
    with pytest.raises(EngineError, match="non-finite"):
        read_actions({"actions": bad}, plan, CONFIG)
    with pytest.raises(EngineError, match=r"shape \(1, 16, 20\)"):
        read_actions({"actions": np.zeros((1, 16, 20), np.float32)}, plan, CONFIG)
    with pytest.raises(EngineError, match="no 'actions' output"):
        read_actions({"act": bad}, plan, CONFIG)
    with pytest.raises(EngineError, match="1 action chunks for 2 observations"):
        read_actions({"actions": np.zeros((1, 16, 21), np.float32)}, plan, CONFIG, batch_size=2)


def test_describe_is_json_friendly():
    import json

    plan = check_contract(*specs(image="nchw", tokens=8), CONFIG)
    text = json.dumps(plan.describe())
    assert "NCHW" in text and "language_tokens" in text
