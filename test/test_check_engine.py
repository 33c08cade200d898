"""groot_check_engine: the comparison, the verdict, the timing and the refusals.

The full run needs a GPU, torch, Isaac-GR00T and an engine (test_trt_gpu.py); here the
pure parts and the command's exits run everywhere.
"""

import sys

import numpy as np
import pytest

from alfie_gr00t.tools import check_engine
from alfie_gr00t.engines.base import EngineConfig, EngineError

from onnx_policy import random_batch


def test_identical_chunks_pass():
    chunks = np.random.default_rng(0).standard_normal((4, 16, 21))
    result = check_engine.compare(chunks, chunks.copy())
    assert result["cosine"] == pytest.approx(1.0) and result["max_abs_diff"] == 0.0
    assert check_engine.verdict(result, 0.99, None) == []


def test_a_drifting_engine_is_refused():
    rng = np.random.default_rng(1)
    eager = rng.standard_normal((4, 16, 21))
    drifted = eager + rng.standard_normal(eager.shape) * 0.8  # cosine ~0.78
    result = check_engine.compare(eager, drifted)
    assert result["cosine"] < 0.9 and result["worst_chunk_cosine"] <= result["cosine"] + 0.1
    assert check_engine.verdict(result, 0.99, None) == [f"cosine {result['cosine']:.5f} < 0.99"]


def test_max_abs_diff_threshold_and_nan():
    eager = np.ones((1, 16, 21))
    close = eager + 0.01
    assert check_engine.verdict(check_engine.compare(eager, close), 0.99, 0.001)[0].startswith("max abs diff 0.01")
    broken = eager.copy()
    broken[0, 0, 0] = np.nan
    assert check_engine.verdict(check_engine.compare(eager, broken), 0.99, None), "NaN never passes"


def test_shape_mismatch_is_an_error():
    with pytest.raises(EngineError, match="differ in shape"):
        check_engine.compare(np.zeros((1, 16, 21)), np.zeros((1, 8, 21)))


def test_stage_clock_synchronises_and_times():
    calls = []
    clock = check_engine.StageClock(lambda: calls.append("sync"))
    timed = clock.wrap("dit", lambda x: x * 2)
    assert timed(3) == 6 and timed(4) == 8
    assert calls == ["sync"] * 4 and len(clock.samples["dit"]) == 2
    assert clock.mean("dit") >= 0 and np.isnan(clock.mean("backbone"))


def test_recorded_observations_split_per_observation(tmp_path):
    batch = random_batch(3, seed=2)
    np.savez(tmp_path / "obs.npz", **batch.images, state=batch.state, language=np.array(["a", "b", "c"]))
    config = EngineConfig()
    observations = check_engine.load_observations(tmp_path, config.camera_names, config.action_dim)
    assert len(observations) == 3 and observations[2].language == ("c",)
    assert np.array_equal(observations[1].images["left_wide"][0], batch.images["left_wide"][1])
    np.savez(tmp_path / "bad.npz", state=batch.state)
    with pytest.raises(EngineError, match=r"bad.npz lacks \['left_wide'"):
        check_engine.load_observations(tmp_path / "bad.npz", config.camera_names, config.action_dim)


def test_random_observations_are_seeded():
    config = EngineConfig()
    a = check_engine.random_observations(2, 5, config, "wave")
    b = check_engine.random_observations(2, 5, config, "wave")
    assert np.array_equal(a[1].images["right_center"], b[1].images["right_center"]) and a[0].language == ("wave",)


def test_without_torch_it_exits_2_and_says_why(tmp_path, monkeypatch, capsys):
    (tmp_path / "dit_model_fp16.engine").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert check_engine.main([str(tmp_path)]) == 2
    assert "torch is not installed" in capsys.readouterr().err


def test_without_an_engine_it_exits_2(tmp_path, capsys):
    assert check_engine.main([str(tmp_path), "--device", "cuda:0"]) == 2
    assert "no DiT engine is beside" in capsys.readouterr().err


def test_report_lists_stages():
    result = {**check_engine.compare(np.ones((2, 16, 21)), np.ones((2, 16, 21))),
              "engine": {"dit_engine": "e.engine", "dit_precision": "fp16", "dit_output_dtype": "float32",
                         "fp32_accumulation": True},
              "eager": {"backbone_ms": 120.0, "dit_step_ms": 30.0, "dit_steps": 4, "total_ms": 300.0},
              "tensorrt": {"backbone_ms": 120.0, "dit_step_ms": 9.5, "dit_steps": 4, "total_ms": 175.0},
              "observations": "random", "seed": 0}
    text = check_engine.report(result, [], 0.99)
    assert "backbone ms" in text and "DiT/step ms" in text and "PASS" in text
    assert "tensorrt         120.0         9.50      4     175.0" in text
