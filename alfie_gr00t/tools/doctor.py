"""groot_doctor: checks this machine for alfie_gr00t and explains what to fix; starts nothing.

    groot_doctor [--checkpoint DIR] [--engine FILE ...] [--config-dir DIR] [--json]

Each line is `ok`, `warn` or `fail` with the fix. Exit code 1 only when a line is `fail`.
Checks: ROS distro and discovery settings; Python, numpy and OpenCV against cv_bridge (numpy < 2
on Humble); the JPEG codec; ZeroMQ (an IPC path can be bound, Curve); torch and CUDA; TensorRT
(and which JetPack ships it); ONNX Runtime's providers; the installed Isaac-GR00T generation (N1.6,
N1.7) and transformers against it; a checkpoint directory (doctor_gr00t.py): its files, its generation
against the install, an N1.7 backbone available offline, its layout against the groot_server.yaml the
nodes start with, judged by the server's own rule; engine files' sidecars against this machine.
Nothing is started: no ROS node, no server, no model load (a socket is bound in a temporary
directory and closed at once to prove IPC works).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from alfie_gr00t import discovery
from alfie_gr00t.tools import doctor_gr00t
from alfie_gr00t.tools.doctor_check import FAIL, OK, WARN, Check, import_or_error as _import, \
    major_minor as _major_minor, version_of as _version

# TensorRT major.minor -> the JetPack 6 release that ships it
JETPACK_TENSORRT = {(8, 6): "JetPack 6.0", (10, 3): "JetPack 6.1/6.2"}
HUMBLE_PYTHON = (3, 10)


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
def run_checks(checkpoint: Path | None = None, engines=(), config_dir: Path | None = None, env=None) -> list[Check]:
    checks = check_ros(env) + check_python(env) + check_jpeg() + check_zmq() + check_torch() + check_tensorrt() \
        + check_onnxruntime() + doctor_gr00t.check_gr00t()
    if checkpoint is not None:
        checks += doctor_gr00t.check_checkpoint(checkpoint, config_dir, env)
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
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="where groot_server.yaml is (default: the one the nodes start with: the installed "
                        "share/alfie_gr00t/config, else the source checkout's config/)")
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
