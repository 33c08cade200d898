"""groot_doctor checks and explains without starting anything. The parts this machine has
are checked for real; TensorRT, CUDA and numpy 1.x/2.x are fakes (modules named Fake*, injected through
sys.modules) that carry only the attributes the doctor reads: `__version__`, `cuda.*`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from alfie_gr00t.engines import trt_api
from alfie_gr00t.tools import doctor, doctor_gr00t

from support import n1d7_checkpoint as n17

ALFIE_VIDEO = ["left_wide", "right_wide", "left_center", "right_center"]
ALFIE_ACTION = {"base_velocity": 6, "left_arm": 6, "right_arm": 6, "head": 3}
PINS = {"N1.6": "4.51.3", "N1.7": "4.57.3"}


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
    """An N1.6 checkpoint's files as upstream saves them (config.json names the model class)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "Gr00tN1d6", "architectures": ["Gr00tN1d6"]}))
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


def fake_install(root, *modules):
    """An Isaac-GR00T tree holding gr00t/model/<module>/ for each generation named (what tells it)."""
    for module in modules:
        (root / "gr00t" / "model" / module).mkdir(parents=True)
    return root / "gr00t"


def by_topic(checks, topic):
    return [c for c in checks if c.topic == topic]


def test_checkpoint_that_fits_the_shipped_config(tmp_path):
    checks = doctor_gr00t.check_checkpoint(write_checkpoint(tmp_path / "ckpt"), where=tmp_path / "none")
    assert [c.level for c in checks] == [doctor.OK] * len(checks), [c.line() for c in checks]
    (layout_check,) = by_topic(checks, "layout")
    assert "groups [base_velocity 6, left_arm 6, right_arm 6, head 3]; adopts language_key" in layout_check.message
    assert by_topic(checks, "generation")[0].message == "Isaac-GR00T N1.6 (config.json model_type 'Gr00tN1d6')"


@pytest.mark.parametrize("kwargs, topic, says", [
    (dict(weights=False), "checkpoint", "model*.safetensors"),
    (dict(video=["front", "wrist"]), "layout", "have no video key in the checkpoint (its video keys: "
                                               "['front', 'wrist'])"),
    (dict(action={"arm": 7, "gripper": 1}), "layout", "add up to 8 dims, action_dim is 21: set action_dim:=8"),
    (dict(tag="unitree_g1"), "layout", "no embodiment 'new_embodiment'"),
])
def test_checkpoint_mismatches_fail_with_both_sides(tmp_path, kwargs, topic, says):
    path = write_checkpoint(tmp_path / "ckpt", **kwargs)
    failed = [c for c in doctor_gr00t.check_checkpoint(path) if c.level == doctor.FAIL]
    assert failed and failed[0].topic.startswith(topic) and says in failed[0].message, [c.line() for c in failed]
    assert doctor.main(["--checkpoint", str(path)]) == 1


def test_the_layout_is_judged_by_the_servers_rule_on_the_parameter_file(tmp_path):
    """The same refusal the server gives at start, from the parameter file given: a language_key set in
    it that contradicts the checkpoint."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "groot_server.yaml").write_text("groot_server:\n  ros__parameters:\n    language_key: instruction\n")
    checks = doctor_gr00t.check_checkpoint(write_checkpoint(tmp_path / "ckpt"), config_dir)
    assert by_topic(checks, "parameters")[0].message == str(config_dir / "groot_server.yaml")
    (layout_check,) = by_topic(checks, "layout")
    assert layout_check.level == doctor.FAIL
    assert "language_key: parameter 'instruction', checkpoint 'annotation.human.task_description'" in \
        layout_check.message


def test_statistics_are_read_as_the_server_reads_them(tmp_path):
    path = write_checkpoint(tmp_path / "ckpt")
    stats = json.loads((path / "statistics.json").read_text())
    (path / "statistics.json").write_text(json.dumps({"gr1": stats["new_embodiment"]}))
    (layout_check,) = by_topic(doctor_gr00t.check_checkpoint(path), "layout")
    assert layout_check.level == doctor.FAIL
    assert "statistics have no embodiment 'new_embodiment' (they have ['gr1'])" in layout_check.message


def test_an_n1d7_checkpoint_with_several_language_keys_and_rl_info(tmp_path):
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    cache = tmp_path / "hf"
    write_cached_backbone(cache)
    checks = doctor_gr00t.check_checkpoint(checkpoint, env={"HF_HUB_CACHE": str(cache)},
                                           where=fake_install(tmp_path, "gr00t_n1d7"))
    assert [c.level for c in checks] == [doctor.OK] * len(checks), [c.line() for c in checks]
    assert by_topic(checks, "generation")[0].message == "Isaac-GR00T N1.7 (config.json model_type 'Gr00tN1d7')"
    assert f"language key '{n17.LANGUAGE_KEYS[0]}' (the first of {list(n17.LANGUAGE_KEYS)})" in \
        by_topic(checks, "layout")[0].message
    history = n17.write_checkpoint(tmp_path / "history", n17.Gr00tN1d7Config(state_history_length=2))
    (layout_check,) = by_topic(doctor_gr00t.check_checkpoint(history, env={"HF_HUB_CACHE": str(cache)}), "layout")
    assert layout_check.level == doctor.FAIL and "state_history_length 2" in layout_check.message


@pytest.mark.parametrize("theirs, installed, names", [
    ("Gr00tN1d7", "gr00t_n1d6", ("Isaac-GR00T N1.7", "is N1.6 (gr00t.model.gr00t_n1d6)", "checkout main")),
    ("Gr00tN1d6", "gr00t_n1d7", ("Isaac-GR00T N1.6", "is N1.7 (gr00t.model.gr00t_n1d7)", "checkout n1.6-release")),
])
def test_a_checkpoint_of_another_generation_than_installed_fails_with_the_fix(tmp_path, theirs, installed, names):
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt", model_type=theirs)
    (check,) = by_topic(doctor_gr00t.check_checkpoint(checkpoint, where=fake_install(tmp_path, installed),
                                                      env={"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path)}),
                        "generation")
    assert check.level == doctor.FAIL and all(name in check.message for name in names[:2]), check.message
    assert names[2] in check.fix


@pytest.mark.parametrize("generations, version, levels, says", [
    (("gr00t_n1d7",), "4.51.3", [doctor.FAIL], "too old for N1.7's Qwen3-VL backbone (needs 4.57 or later)"),
    (("gr00t_n1d7",), "4.57.3", [doctor.OK], "4.57.3, as Isaac-GR00T N1.7 pins"),
    (("gr00t_n1d7",), "4.58.0", [doctor.WARN], "Isaac-GR00T N1.7 pins transformers 4.57.3"),
    (("gr00t_n1d7",), "4.57.6", [doctor.OK], "4.57.6, as Isaac-GR00T N1.7 pins"),
    (("gr00t_n1d6",), "4.57.3", [doctor.WARN], "Isaac-GR00T N1.6 pins transformers 4.51.3"),
    (("gr00t_n1d6",), "4.51.3", [doctor.OK], "as Isaac-GR00T N1.6 pins"),
])
def test_the_installed_generation_and_transformers_against_it(tmp_path, generations, version, levels, says):
    where = fake_install(tmp_path, *generations)
    checks = doctor_gr00t.check_gr00t(where, transformers=version)
    name = {"gr00t_n1d6": "N1.6", "gr00t_n1d7": "N1.7"}[generations[0]]
    assert checks[0].level == doctor.OK and f"{name} (gr00t.model.{generations[0]})" in checks[0].message
    transformers = by_topic(checks, "transformers")
    assert [c.level for c in transformers] == levels and says in transformers[0].message
    assert transformers[0].level == doctor.OK or f"pip install transformers=={PINS[name]}" in transformers[0].fix


def test_a_tree_without_either_generation_fails(tmp_path):
    (tmp_path / "gr00t" / "model" / "gr00t_n1_5").mkdir(parents=True)
    (check,) = doctor_gr00t.check_gr00t(tmp_path / "gr00t", transformers="4.51.3")
    assert check.level == doctor.FAIL and "neither gr00t/model/gr00t_n1d6 nor gr00t_n1d7" in check.message


# ---------------------------------------------------------------- the N1.7 backbone, offline


def write_cached_backbone(cache, repo="nvidia/Cosmos-Reason2-2B", files=("config.json", "preprocessor_config.json",
                                                                          "tokenizer_config.json", "model.safetensors")):
    """A Hugging Face hub cache as huggingface_hub lays it out (refs/main -> snapshots/<commit>/<file>)."""
    model = cache / f"models--{repo.replace('/', '--')}"
    (model / "refs").mkdir(parents=True, exist_ok=True)
    (model / "refs" / "main").write_text("0123abcd")
    snapshot = model / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in files:
        (snapshot / name).write_text("{}")
    return snapshot


def test_backbone_found_in_the_cache_missing_and_offline(tmp_path):
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    cache = tmp_path / "home" / "hub"
    missing = doctor_gr00t.check_backbone(checkpoint, {"HF_HOME": str(tmp_path / "home")})
    assert [c.level for c in missing] == [doctor.WARN] * 2 and "every start downloads" in missing[0].message
    assert "hf download nvidia/Cosmos-Reason2-2B" in missing[0].fix
    offline = doctor_gr00t.check_backbone(checkpoint, {"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})
    assert offline[0].level == doctor.FAIL and "HF_HUB_OFFLINE is set, so the server cannot start" in offline[0].message
    write_cached_backbone(cache, files=("config.json", "preprocessor_config.json", "tokenizer_config.json"))
    no_weights = doctor_gr00t.check_backbone(checkpoint, {"HF_HOME": str(tmp_path / "home")})
    assert "lacks ['model*.safetensors']" in no_weights[0].message
    write_cached_backbone(cache)
    found = doctor_gr00t.check_backbone(checkpoint, {"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})
    assert [c.level for c in found] == [doctor.OK] * 2 and str(cache) in found[0].message
    assert [c.topic for c in found] == ["backbone (config.json)", "backbone (processor_config.json)"]


def test_a_local_backbone_must_keep_upstreams_name_in_its_path(tmp_path):
    good = write_cached_backbone(tmp_path / "models", files=()).parent.parent / "nvidia" / "Cosmos-Reason2-2B"
    good.mkdir(parents=True)
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json", "model.safetensors"):
        (good / name).write_text("{}")
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt", n17.Gr00tN1d7Config(model_name=str(good)))
    local = doctor_gr00t.check_backbone(checkpoint, {})  # config.json and processor_config.json name it
    assert [c.level for c in local] == [doctor.OK, doctor.OK] and f"local backbone {good}" in local[0].message
    renamed = tmp_path / "cosmos"
    good.rename(renamed)
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt2", n17.Gr00tN1d7Config(model_name=str(renamed)))
    (bad, processor) = doctor_gr00t.check_backbone(checkpoint, {})
    assert bad.level == doctor.FAIL and "containing nvidia/Cosmos-Reason2 or Qwen/Qwen3-VL" in bad.message
    assert processor.level == doctor.OK, "the processor loads any local directory"


def test_the_cache_lookup_agrees_with_huggingface_hub(tmp_path):
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub not installed: the layout lookup runs")
    write_cached_backbone(tmp_path)
    found = hub.try_to_load_from_cache("nvidia/Cosmos-Reason2-2B", "config.json", cache_dir=str(tmp_path))
    assert isinstance(found, str)
    assert doctor_gr00t._cached_file("nvidia/Cosmos-Reason2-2B", "config.json", tmp_path) == Path(found)


# ---------------------------------------------------------------- from a colcon install


def test_from_a_colcon_install_the_doctor_reads_the_installed_parameter_file(tmp_path):
    """The doctor finds groot_server.yaml where the nodes do: in a colcon install, share/alfie_gr00t/config
    through the ament index (not a path relative to its own file, which there is site-packages)."""
    pytest.importorskip("colcon_core", reason="colcon (requirements.txt) builds the install")
    pytest.importorskip("ament_index_python")
    checkout = Path(__file__).resolve().parents[1]
    build = subprocess.run([sys.executable, "-c", "import sys; from colcon_core.command import main; sys.exit(main())",
                            "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(checkout),
                            "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
                            "--packages-select", "alfie_gr00t"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    prefix = tmp_path / "install" / "alfie_gr00t"
    (site,) = prefix.glob("lib/python3*/site-packages")
    shipped = prefix / "share" / "alfie_gr00t" / "config" / "groot_server.yaml"
    text = shipped.read_text()
    shipped.write_text(text.replace('language_key: "task"', 'language_key: "instruction"', 1))  # only this copy
    assert shipped.read_text() != text, "the shipped YAML sets language_key"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    env.update(PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(prefix))
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    run = subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.doctor", "--checkpoint", str(checkpoint), "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    checks = {c["topic"]: c for c in json.loads(run.stdout)}
    assert checks["parameters"]["message"] == str(shipped)
    assert checks["layout"]["level"] == "fail" and "parameter 'instruction'" in checks["layout"]["message"]
    where = subprocess.run([sys.executable, "-c", "import alfie_gr00t; print(alfie_gr00t.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(site)), "the installed package ran, not the checkout"


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
