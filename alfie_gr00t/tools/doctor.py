"""groot_doctor: checks this machine for alfie_gr00t and explains what to fix; starts nothing.

    groot_doctor [--checkpoint DIR] [--engine FILE ...] [--config-dir DIR] [--json]

Each line is `ok`, `warn` or `fail` with the fix. Exit code 1 only when a line is `fail`.
Checks: ROS distro and discovery settings; Python, numpy and OpenCV against cv_bridge (numpy < 2
on Humble); the JPEG codec; ZeroMQ (an IPC path can be bound, Curve); torch and CUDA; TensorRT
(and which JetPack ships it); ONNX Runtime's providers; Isaac-GR00T; a checkpoint directory's files
and modality config against config/*.yaml; engine files' sidecars against this machine.
Nothing is started: no ROS node, no server, no model load (a socket is bound in a temporary
directory and closed at once to prove IPC works).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from alfie_gr00t import discovery

OK, WARN, FAIL = "ok", "warn", "fail"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
# TensorRT major.minor -> the JetPack 6 release that ships it
JETPACK_TENSORRT = {(8, 6): "JetPack 6.0", (10, 3): "JetPack 6.1/6.2"}
HUMBLE_PYTHON = (3, 10)


@dataclass
class Check:
    level: str
    topic: str
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:4}  {self.topic}: {self.message}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.level != OK else "")


def _version(module) -> str:
    return str(getattr(module, "__version__", "") or "?")


def _import(name: str):
    """The module, or the exception that importing it raised (never raises)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a binary built against another numpy
        return exc


def _major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# ---------------------------------------------------------------------------------------- ROS
def check_ros(env=None) -> list[Check]:
    env = os.environ if env is None else env
    distro = discovery.distro(env)
    named = bool(env.get("ROS_DISTRO"))
    checks = []
    rclpy = _import("rclpy")
    if isinstance(rclpy, Exception):
        fix = f"source /opt/ros/{distro}/setup.bash" if named else \
            "source /opt/ros/<distro>/setup.bash (Humble on the robot), or `make venv` (Jazzy from PyPI)"
        checks.append(Check(FAIL, "ROS", f"rclpy is not importable ({rclpy})", fix))
    else:
        where = "from PyPI (Jazzy wheels)" if "site-packages" in str(getattr(rclpy, "__file__", "")) \
            else "from the ROS install"
        checks.append(Check(OK, "ROS", f"ROS 2 {distro}{'' if named else ' (ROS_DISTRO unset)'}, rclpy {where}"))
    pre_iron = distro in discovery.PRE_IRON
    range_set = env.get(discovery.RANGE_VARIABLE)
    localhost_only = env.get(discovery.LOCALHOST_ONLY_VARIABLE)
    domain = env.get("ROS_DOMAIN_ID", "0 (default)")
    if pre_iron and range_set:
        checks.append(Check(WARN, "discovery", f"{discovery.RANGE_VARIABLE}={range_set} is ignored by {distro} "
                            "(it exists from Iron on)",
                            f"unset {discovery.RANGE_VARIABLE}; on {distro} ROS_LOCALHOST_ONLY=1 keeps discovery "
                            "on this machine"))
    if not pre_iron and localhost_only:
        checks.append(Check(WARN, "discovery", f"ROS_LOCALHOST_ONLY={localhost_only} is deprecated on {distro} "
                            "(it warns at every start)",
                            f"unset ROS_LOCALHOST_ONLY; use {discovery.RANGE_VARIABLE}=LOCALHOST"))
    if discovery.is_confined(env, distro):
        checks.append(Check(OK, "discovery", f"confined to this machine "
                            f"({', '.join(f'{k}={v}' for k, v in discovery.localhost_only_env(distro).items())}), "
                            f"ROS_DOMAIN_ID {domain}; the robot's drivers must be on this machine too"))
    else:
        wanted = " ".join(f"{k}={v}" for k, v in discovery.localhost_only_env(distro).items())
        checks.append(Check(OK, "discovery", f"on the network, ROS_DOMAIN_ID {domain} (what a robot whose "
                            f"drivers run elsewhere needs; tests, demo and benchmarks set {wanted} themselves)"))
    return checks


# ------------------------------------------------------------------------- Python, numpy, OpenCV
def check_python(env=None) -> list[Check]:
    env = os.environ if env is None else env
    distro = discovery.distro(env)
    checks = []
    py = sys.version_info[:2]
    py_text = platform.python_version()
    if distro == "humble" and py != HUMBLE_PYTHON:
        checks.append(Check(FAIL, "Python", f"{py_text}, but Humble's rclpy is built for Python 3.10",
                            "use Ubuntu 22.04's python3 (3.10) for the venv: python3 -m venv --system-site-packages"))
    elif py < (3, 10):
        checks.append(Check(FAIL, "Python", f"{py_text} is too old", "Python 3.10 (Humble) or 3.11+ (Jazzy)"))
    else:
        checks.append(Check(OK, "Python", f"{py_text} ({sys.executable})"))

    numpy = _import("numpy")
    if isinstance(numpy, Exception):
        checks.append(Check(FAIL, "numpy", f"not importable ({numpy})", "pip install -r requirements(-humble).txt"))
        return checks
    major = _major_minor(_version(numpy))[0]
    cv_bridge = _import("cv_bridge")
    bridge = "" if isinstance(cv_bridge, Exception) else ", cv_bridge present"
    if distro == "humble" and major >= 2:
        checks.append(Check(FAIL, "numpy", f"{numpy.__version__}{bridge}: Humble's cv_bridge and JetPack's OpenCV "
                            "are built against numpy 1.x and fail to import or crash with numpy 2",
                            "pip install -r requirements-humble.txt (numpy==1.26.4)"))
    else:
        checks.append(Check(OK, "numpy", f"{numpy.__version__}{bridge}"))

    cv2 = _import("cv2")
    if isinstance(cv2, Exception):
        level = FAIL if isinstance(_import("simplejpeg"), Exception) else WARN  # JPEG still works
        checks.append(Check(level, "OpenCV", f"not importable ({cv2})",
                            "pip install opencv-python-headless (pinned in requirements*.txt), or apt python3-opencv"))
    else:
        checks.append(Check(OK, "OpenCV", f"{cv2.__version__} ({Path(cv2.__file__).parent})"))
    return checks


def check_jpeg() -> list[Check]:
    simplejpeg = _import("simplejpeg")
    if not isinstance(simplejpeg, Exception):
        return [Check(OK, "JPEG", f"simplejpeg {_version(simplejpeg)} (libjpeg-turbo), the faster codec")]
    cv2 = _import("cv2")
    if not isinstance(cv2, Exception):
        return [Check(OK, "JPEG", f"OpenCV {cv2.__version__} (simplejpeg absent: pip install simplejpeg is faster)")]
    return [Check(FAIL, "JPEG", "no JPEG codec: neither simplejpeg nor OpenCV imports",
                  "pip install simplejpeg (or opencv-python-headless)")]


# ------------------------------------------------------------------------------------- ZeroMQ
def check_zmq(ipc_dir: str | None = None) -> list[Check]:
    zmq = _import("zmq")
    if isinstance(zmq, Exception):
        return [Check(FAIL, "ZeroMQ", f"pyzmq is not importable ({zmq})", "pip install pyzmq (pinned in requirements)")]
    checks = [Check(OK, "ZeroMQ", f"pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}")]
    directory = ipc_dir or tempfile.gettempdir()
    path = None
    try:
        path = tempfile.mkdtemp(prefix="ag_doctor_", dir=directory)
        context = zmq.Context()
        socket = context.socket(zmq.REP)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            socket.bind(f"ipc://{os.path.join(path, 's')}")
        finally:
            socket.close(0)
            context.term()
        checks.append(Check(OK, "ZeroMQ IPC", f"an ipc:// socket binds under {directory}"))
    except Exception as exc:
        checks.append(Check(FAIL, "ZeroMQ IPC", f"cannot bind an ipc:// socket under {directory}: {exc}",
                            "point ipc_path at a writable directory (parameter ipc_path), or use transport:=tcp"))
    finally:
        if path:
            shutil.rmtree(path, ignore_errors=True)
    if zmq.has("curve"):
        checks.append(Check(OK, "ZeroMQ Curve", "available (encrypted, authenticated TCP between machines)"))
    else:
        checks.append(Check(WARN, "ZeroMQ Curve", "this libzmq has no Curve: TCP between machines is unencrypted",
                            "pip install pyzmq (its wheels bundle libzmq with Curve)"))
    return checks


# ------------------------------------------------------------------------- GPU side: torch, TRT
def check_torch() -> list[Check]:
    torch = _import("torch")
    if isinstance(torch, Exception):
        return [Check(WARN, "torch", f"not importable ({torch}); needed only where groot_server runs Gr00tPolicy",
                      "Jetson: torch from NVIDIA's JetPack 6 wheels (Isaac-GR00T's Orin environment); "
                      "elsewhere pip install torch")]
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_available():
        name = cuda.get_device_name(0)
        cc = cuda.get_device_capability(0)
        return [Check(OK, "torch", f"{_version(torch)}, CUDA {getattr(torch.version, 'cuda', '?')}: {name} "
                      f"(sm_{cc[0]}{cc[1]})")]
    return [Check(WARN, "torch", f"{_version(torch)} without CUDA: Gr00tPolicy runs on CPU (seconds per chunk)",
                  "on the Jetson install NVIDIA's JetPack torch wheel, not PyPI's (no sm_87 CUDA build)")]


def _gpu_of(torch) -> tuple[str, tuple[int, int]] | None:
    if isinstance(torch, Exception) or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0))


def check_tensorrt() -> list[Check]:
    trt = _import("tensorrt")
    if isinstance(trt, Exception):
        return [Check(WARN, "TensorRT", f"not importable ({trt}); needed only for a TensorRT DiT or engine",
                      "Jetson: JetPack 6.1+ ships TensorRT 10.3 (apt python3-libnvinfer; a venv needs "
                      "--system-site-packages); x86_64: pip install 'tensorrt>=10.3,<12'")]
    version = _version(trt)
    mm = _major_minor(version)
    jetpack = JETPACK_TENSORRT.get(mm)
    shipped = f" (= {jetpack})" if jetpack else ""
    if mm[0] < 10:
        return [Check(FAIL, "TensorRT", f"{version}{shipped}: groot_build_engine and the engines need TensorRT 10 "
                      "or 11 (name-based tensors, execute_async_v3)",
                      "upgrade to JetPack 6.1 or 6.2 (TensorRT 10.3)" if jetpack else "pip install 'tensorrt>=10.3,<12'")]
    return [Check(OK, "TensorRT", f"{version}{shipped}")]


def check_onnxruntime() -> list[Check]:
    ort = _import("onnxruntime")
    if isinstance(ort, Exception):
        return [Check(WARN, "ONNX Runtime", f"not importable ({ort}); needed only for .onnx policies",
                      "pip install onnxruntime (Jetson: NVIDIA's onnxruntime-gpu wheel; PyPI has no aarch64 GPU build)")]
    providers = list(ort.get_available_providers())
    gpu = [p for p in providers if p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")]
    if platform.machine() == "aarch64" and not gpu:
        return [Check(WARN, "ONNX Runtime", f"{_version(ort)}: CPU only ({', '.join(providers)})",
                      "on the Jetson install NVIDIA's onnxruntime-gpu wheel for JetPack 6")]
    return [Check(OK, "ONNX Runtime", f"{_version(ort)}: {', '.join(providers)}")]


def _git_describe(directory: Path) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        out = subprocess.run([git, "-C", str(directory), "describe", "--tags", "--always"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def check_gr00t() -> list[Check]:
    spec = None
    try:
        spec = importlib.util.find_spec("gr00t")
    except (ImportError, ValueError):
        pass
    if spec is None or not spec.origin:
        return [Check(WARN, "Isaac-GR00T", "package 'gr00t' not found; needed only where groot_server loads a "
                      "checkpoint directory",
                      "git clone Isaac-GR00T, check out n1.6-release; on the Jetson its "
                      "scripts/deployment/orin/install_deps.sh (JetPack 6.2, Python 3.10)")]
    where = Path(spec.origin).parent
    try:
        version = importlib.metadata.version("gr00t")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    described = _git_describe(where.parent)
    tag = f", git {described}" if described else ""
    has_n16 = (where / "policy" / "gr00t_policy.py").is_file()
    if not has_n16:
        return [Check(FAIL, "Isaac-GR00T", f"{version} at {where}{tag} has no gr00t/policy/gr00t_policy.py "
                      "(an N1.5 or older tree?)", "check out Isaac-GR00T's n1.6-release tag")]
    return [Check(OK, "Isaac-GR00T", f"gr00t {version} at {where}{tag} (importable; not loaded)")]


# --------------------------------------------------------------------------------- checkpoint
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, exc


def _yaml_params(path: Path, node: str) -> dict:
    yaml = _import("yaml")
    if isinstance(yaml, Exception) or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in data.items():  # `groot_client: {ros__parameters: ...}` or `/**: ...`
        if isinstance(value, dict) and "ros__parameters" in value and (key.endswith(node) or key.startswith("/**")):
            return value["ros__parameters"]
    return {}


def _modality_configs(processor: dict) -> dict:
    kwargs = processor.get("processor_kwargs", processor)
    return kwargs.get("modality_configs", {}) if isinstance(kwargs, dict) else {}


def check_checkpoint(directory: Path, config_dir: Path = REPO_CONFIG) -> list[Check]:
    """The files an Isaac-GR00T N1.6 fine-tuned checkpoint holds, and its modality config against the
    shipped parameter files (config/groot_server.yaml, config/groot_client.yaml)."""
    topic = f"checkpoint {directory}"
    if not directory.is_dir():
        return [Check(FAIL, topic, "is not a directory", "pass --checkpoint the fine-tuning output directory")]
    checks = []
    weights = sorted(p.name for p in directory.glob("*.safetensors")) + \
        sorted(p.name for p in directory.glob("*.safetensors.index.json"))
    missing = [name for name in ("config.json",) if not (directory / name).is_file()]
    if not weights:
        missing.append("model*.safetensors")
    if missing:
        checks.append(Check(FAIL, topic, f"lacks {', '.join(missing)} (has {sorted(p.name for p in directory.iterdir())[:12]})",
                            "point it at Isaac-GR00T's fine-tuning output (config.json + model*.safetensors)"))
    else:
        checks.append(Check(OK, topic, f"config.json, {len(weights)} weight file(s) ({weights[0]}...)"))
    statistics, error = _read_json(directory / "statistics.json")
    if statistics is None:
        checks.append(Check(WARN, "statistics.json", f"not readable ({error}); Gr00tPolicy may still hold them",
                            "keep statistics.json from fine-tuning beside the weights"))
    else:
        checks.append(Check(OK, "statistics.json", f"embodiments {sorted(statistics)}"))
    for name in ("experiment_cfg/metadata.json", "embodiment_id.json"):
        if (directory / name).is_file():
            checks.append(Check(OK, name, "present"))
    processor, error = _read_json(directory / "processor_config.json")
    if processor is None:
        checks.append(Check(WARN, "processor_config.json", f"not readable ({error}): the modality config is not "
                            "checked here (the server checks it at start)",
                            "keep processor_config.json from fine-tuning beside the weights"))
        return checks
    configs = _modality_configs(processor)
    server = _yaml_params(config_dir / "groot_server.yaml", "groot_server")
    client = _yaml_params(config_dir / "groot_client.yaml", "groot_client")
    tag = server.get("embodiment_tag", "")
    entry = configs.get(tag) if tag in configs else (next(iter(configs.values())) if len(configs) == 1 else None)
    if entry is None:
        checks.append(Check(FAIL, "modality config", f"no embodiment '{tag}' in processor_config.json "
                            f"(it has {sorted(configs)})", "set embodiment_tag to the one it was fine-tuned with"))
        return checks

    def keys(modality):
        value = entry.get(modality) or {}
        return list(value.get("modality_keys", [])) if isinstance(value, dict) else []

    video = keys("video")
    cameras = list(client.get("camera_names", []))
    video_keys = list(server.get("video_keys", [])) or cameras
    if video and video_keys and sorted(video) != sorted(video_keys):
        checks.append(Check(FAIL, "modality config", f"video keys {video}, parameters {video_keys} "
                            "(camera_names / video_keys)",
                            "set video_keys (server) to the checkpoint's keys, one per camera, in camera_names order"))
    else:
        checks.append(Check(OK, "modality config", f"embodiment '{tag}': video {video}, state {keys('state')}, "
                            f"action {keys('action')}, language {keys('language')}"))
    if isinstance(statistics, dict) and tag in statistics:
        sizes = {g: len(v.get("mean", v.get("min", []))) for g, v in statistics[tag].get("action", {}).items()}
        total = sum(sizes.values())
        dim = server.get("action_dim", client.get("action_dim"))
        if sizes and dim and total != dim:
            checks.append(Check(FAIL, "action groups", f"{sizes} add up to {total}, action_dim is {dim}",
                                f"set action_dim to {total} (server and client) or use a matching checkpoint"))
        elif sizes:
            checks.append(Check(OK, "action groups", f"{sizes} = {total} dims"))
    return checks


# ------------------------------------------------------------------------------------ engines
def check_engines(paths, trt=None, gpu=None) -> list[Check]:
    """Each engine's sidecar (<engine>.json, written by groot_build_engine) against this machine's
    TensorRT and GPU (`trt`, `gpu`: found here when not given)."""
    from alfie_gr00t.engines import trt_api

    if trt is None:
        trt = _import("tensorrt")
    if gpu is None:
        gpu = _gpu_of(_import("torch"))
    here_trt = None if isinstance(trt, Exception) else _version(trt)
    checks = []
    for path in map(Path, paths):
        topic = f"engine {path.name}"
        if not path.is_file():
            checks.append(Check(FAIL, topic, f"{path} does not exist", "groot_build_engine dit_model.onnx on this machine"))
            continue
        facts = trt_api.read_sidecar(path)
        if facts is None:
            checks.append(Check(WARN, topic, f"no readable sidecar {trt_api.sidecar_path(path).name}: which TensorRT "
                                "and GPU built it is unknown", "rebuild it with groot_build_engine (writes the sidecar)"))
            continue
        built = str(facts.get("tensorrt_version", "?"))
        built_cc = tuple(facts.get("compute_capability") or ())
        desc = f"TensorRT {built}, {facts.get('gpu', '?')} (sm_{''.join(map(str, built_cc))}), {facts.get('precision', '?')}"
        rebuild = f"rebuild on this machine: groot_build_engine {facts.get('onnx', '<dit_model.onnx>')}"
        if here_trt is not None and built != here_trt:
            checks.append(Check(FAIL, topic, f"built with {desc}; this machine has TensorRT {here_trt}", rebuild))
        elif gpu is not None and built_cc and tuple(built_cc) != tuple(gpu[1]):
            checks.append(Check(FAIL, topic, f"built with {desc}; this GPU is {gpu[0]} "
                                f"(sm_{gpu[1][0]}{gpu[1][1]})", rebuild))
        elif here_trt is None or gpu is None:
            checks.append(Check(WARN, topic, f"built with {desc}; cannot compare: "
                                f"{'no TensorRT' if here_trt is None else 'no CUDA GPU visible'} here",
                                "run groot_doctor on the machine that serves it"))
        else:
            checks.append(Check(OK, topic, f"built with {desc}: matches this machine"))
    return checks


# ------------------------------------------------------------------------------------- main
def run_checks(checkpoint: Path | None = None, engines=(), config_dir: Path = REPO_CONFIG, env=None) -> list[Check]:
    checks = check_ros(env) + check_python(env) + check_jpeg() + check_zmq() + check_torch() + check_tensorrt() \
        + check_onnxruntime() + check_gr00t()
    if checkpoint is not None:
        checks += check_checkpoint(checkpoint, config_dir)
        engines = list(engines) + sorted(str(p) for p in checkpoint.glob("*.engine"))
    if engines:
        checks += check_engines(engines)
    return checks


def exit_code(checks) -> int:
    return 1 if any(c.level == FAIL for c in checks) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groot_doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="an Isaac-GR00T checkpoint directory to check")
    parser.add_argument("--engine", action="append", default=[], help="a TensorRT engine file to check (repeatable)")
    parser.add_argument("--config-dir", type=Path, default=REPO_CONFIG,
                        help="where groot_server.yaml and groot_client.yaml are (default: the package's config/)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    checks = run_checks(args.checkpoint, args.engine, args.config_dir)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for check in checks:
            print(check.line())
        fails = sum(c.level == FAIL for c in checks)
        warns = sum(c.level == WARN for c in checks)
        print(f"{len(checks)} checks: {fails} fail, {warns} warn")
    return exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())
