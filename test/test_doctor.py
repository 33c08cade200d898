"""groot_doctor checks and explains without starting anything. The parts this machine has
are checked for real; TensorRT, CUDA and numpy 1.x/2.x are fakes (modules named Fake*, injected through
sys.modules) that carry only the attributes the doctor reads: `__version__`, `cuda.*`."""

from __future__ import annotations

import json
import sys
import types

import pytest

from alfie_gr00t.engines import trt_api
from alfie_gr00t.tools import doctor

ALFIE_VIDEO = ["left_wide", "right_wide", "left_center", "right_center"]
ALFIE_ACTION = {"base_velocity": 6, "left_arm": 6, "right_arm": 6, "head": 3}


def fake_module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__doc__ = f"Fake{name}: a stand-in for {name} with only what groot_doctor reads"
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def levels(checks, topic_prefix: str) -> list[str]:
    return [c.level for c in checks if c.topic.startswith(topic_prefix)]


def test_this_machine_every_line_is_ok_warn_or_fail_and_the_exit_code_follows(capsys):
    code = doctor.main([])
    out = capsys.readouterr().out.splitlines()
    checks = [line for line in out if not line.startswith("      fix:")][:-1]
    assert checks and all(line.split()[0] in ("ok", "warn", "fail") for line in checks)
    assert code == (1 if any(line.startswith("fail") for line in checks) else 0)
    summary = out[-1]
    assert summary.endswith("warn") and f"{sum(l.startswith('fail') for l in checks)} fail" in summary
    for topic in ("ROS", "discovery", "Python", "numpy", "JPEG", "ZeroMQ IPC", "ZeroMQ Curve", "torch", "TensorRT",
                  "ONNX Runtime", "Isaac-GR00T"):
        assert any(line[6:].startswith(topic + ":") for line in checks), f"no {topic} line"


@pytest.mark.parametrize("version, level, says", [
    ("8.6.2", doctor.FAIL, "JetPack 6.0"),
    ("10.3.0", doctor.OK, "JetPack 6.1/6.2"),
    ("11.0.1", doctor.OK, "11.0.1"),
])
def test_tensorrt_version_and_the_jetpack_that_ships_it(monkeypatch, version, level, says):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_module("tensorrt", __version__=version))
    (check,) = doctor.check_tensorrt()
    assert check.level == level and says in check.message
    if level == doctor.FAIL:
        assert "JetPack 6.1" in check.fix
        assert doctor.exit_code([check]) == 1


def test_numpy_2_on_humble_fails_with_the_pin_and_numpy_1_passes(monkeypatch):
    humble = {"ROS_DISTRO": "humble"}
    monkeypatch.setitem(sys.modules, "numpy", fake_module("numpy", __version__="2.2.6"))
    numpy_check = [c for c in doctor.check_python(humble) if c.topic == "numpy"][0]
    assert numpy_check.level == doctor.FAIL and "cv_bridge" in numpy_check.message
    assert "requirements-humble.txt" in numpy_check.fix
    monkeypatch.setitem(sys.modules, "numpy", fake_module("numpy", __version__="1.26.4"))
    assert levels(doctor.check_python(humble), "numpy") == [doctor.OK]
    monkeypatch.setitem(sys.modules, "numpy", fake_module("numpy", __version__="2.4.6"))
    assert levels(doctor.check_python({"ROS_DISTRO": "jazzy"}), "numpy") == [doctor.OK], "Jazzy is numpy 2"


def test_humble_needs_python_3_10():
    python = [c for c in doctor.check_python({"ROS_DISTRO": "humble"}) if c.topic == "Python"][0]
    assert python.level == (doctor.OK if sys.version_info[:2] == (3, 10) else doctor.FAIL)


def test_discovery_variables_of_the_other_distro_are_explained():
    humble = doctor.check_ros({"ROS_DISTRO": "humble", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    warn = [c for c in humble if c.topic == "discovery" and c.level == doctor.WARN]
    assert warn and "ROS_LOCALHOST_ONLY=1" in warn[0].fix
    jazzy = doctor.check_ros({"ROS_DISTRO": "jazzy", "ROS_LOCALHOST_ONLY": "1"})
    warn = [c for c in jazzy if c.topic == "discovery" and c.level == doctor.WARN]
    assert warn and "deprecated" in warn[0].message
    confined = doctor.check_ros({"ROS_DISTRO": "humble", "ROS_LOCALHOST_ONLY": "1"})
    assert any("confined to this machine" in c.message for c in confined)
    network = doctor.check_ros({"ROS_DISTRO": "jazzy"})
    assert any("on the network" in c.message for c in network), "the nodes never force loopback"


def test_rclpy_missing_names_the_setup_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "rclpy", None)  # import rclpy -> ImportError
    (ros,) = [c for c in doctor.check_ros({"ROS_DISTRO": "humble"}) if c.topic == "ROS"]
    assert ros.level == doctor.FAIL and ros.fix == "source /opt/ros/humble/setup.bash"


def test_zmq_ipc_that_cannot_bind_fails_with_the_fix(tmp_path):
    assert levels(doctor.check_zmq(str(tmp_path)), "ZeroMQ IPC") == [doctor.OK]
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    (ipc,) = [c for c in doctor.check_zmq(str(blocked)) if c.topic == "ZeroMQ IPC"]
    assert ipc.level == doctor.FAIL and "ipc_path" in ipc.fix
    assert list(tmp_path.iterdir()) == [blocked], "the probe leaves nothing behind"


def test_torch_with_cuda_names_the_gpu(monkeypatch):
    cuda = types.SimpleNamespace(is_available=lambda: True, get_device_name=lambda i: "Orin",
                                 get_device_capability=lambda i: (8, 7))
    monkeypatch.setitem(sys.modules, "torch", fake_module("torch", __version__="2.5.0a0+nv24.08", cuda=cuda,
                                                          version=types.SimpleNamespace(cuda="12.6")))
    (check,) = doctor.check_torch()
    assert check.level == doctor.OK and "Orin (sm_87)" in check.message and "CUDA 12.6" in check.message


def write_checkpoint(path, video=ALFIE_VIDEO, action=ALFIE_ACTION, weights=True, tag="new_embodiment"):
    path.mkdir()
    (path / "config.json").write_text("{}")
    if weights:
        (path / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 8)
    modality = {"video": {"delta_indices": [0], "modality_keys": list(video)},
                "state": {"delta_indices": [0], "modality_keys": list(action)},
                "action": {"delta_indices": list(range(16)), "modality_keys": list(action)},
                "language": {"delta_indices": [0], "modality_keys": ["annotation.human.task_description"]}}
    (path / "processor_config.json").write_text(json.dumps(
        {"processor_class": "Gr00tN1d6Processor", "processor_kwargs": {"modality_configs": {tag: modality}}}))
    stats = {g: {"mean": [0.0] * n, "std": [1.0] * n} for g, n in action.items()}
    (path / "statistics.json").write_text(json.dumps({tag: {"state": stats, "action": stats}}))
    return path


def test_checkpoint_that_fits_the_shipped_config(tmp_path):
    checks = doctor.check_checkpoint(write_checkpoint(tmp_path / "ckpt"))
    assert [c.level for c in checks] == [doctor.OK] * len(checks), [c.line() for c in checks]
    assert any(c.topic == "action groups" and "= 21 dims" in c.message for c in checks)


@pytest.mark.parametrize("kwargs, topic, says", [
    (dict(weights=False), "checkpoint", "model*.safetensors"),
    (dict(video=["front", "wrist"]), "modality config", "video keys ['front', 'wrist']"),
    (dict(action={"arm": 7, "gripper": 1}), "action groups", "add up to 8, action_dim is 21"),
    (dict(tag="unitree_g1"), "modality config", "no embodiment 'new_embodiment'"),
])
def test_checkpoint_mismatches_fail_with_both_sides(tmp_path, kwargs, topic, says):
    if kwargs.get("tag"):  # two embodiments, neither the configured one
        path = write_checkpoint(tmp_path / "ckpt", **kwargs)
        data = json.loads((path / "processor_config.json").read_text())
        data["processor_kwargs"]["modality_configs"]["other"] = {}
        (path / "processor_config.json").write_text(json.dumps(data))
    else:
        path = write_checkpoint(tmp_path / "ckpt", **kwargs)
    failed = [c for c in doctor.check_checkpoint(path) if c.level == doctor.FAIL]
    assert failed and failed[0].topic.startswith(topic) and says in failed[0].message, [c.line() for c in failed]
    assert doctor.main(["--checkpoint", str(path)]) == 1


def test_engine_sidecar_against_this_machine(tmp_path):
    engine = tmp_path / "dit_model_fp16.engine"
    engine.write_bytes(b"plan")
    trt_api.write_sidecar(engine, {"tensorrt_version": "10.3.0", "gpu": "Orin", "compute_capability": [8, 7],
                                   "precision": "fp16", "onnx": "dit_model.onnx"})
    trt10 = fake_module("tensorrt", __version__="10.3.0")
    (ok,) = doctor.check_engines([engine], trt=trt10, gpu=("Orin", (8, 7)))
    assert ok.level == doctor.OK
    (other_trt,) = doctor.check_engines([engine], trt=fake_module("tensorrt", __version__="10.7.0"), gpu=("Orin", (8, 7)))
    assert other_trt.level == doctor.FAIL and "groot_build_engine dit_model.onnx" in other_trt.fix
    (other_gpu,) = doctor.check_engines([engine], trt=trt10, gpu=("NVIDIA H100", (9, 0)))
    assert other_gpu.level == doctor.FAIL and "sm_90" in other_gpu.message
    (unknown,) = doctor.check_engines([engine], trt=ImportError("no tensorrt"), gpu=None)
    assert unknown.level == doctor.WARN
    bare = tmp_path / "bare.engine"
    bare.write_bytes(b"plan")
    (no_sidecar,) = doctor.check_engines([bare], trt=trt10, gpu=("Orin", (8, 7)))
    assert no_sidecar.level == doctor.WARN and "sidecar" in no_sidecar.message


def test_json_output(capsys, tmp_path):
    doctor.main(["--json", "--engine", str(tmp_path / "missing.engine")])
    checks = json.loads(capsys.readouterr().out)
    assert {"level", "topic", "message", "fix"} <= set(checks[0])
    assert checks[-1]["topic"] == "engine missing.engine" and checks[-1]["level"] == "fail"
