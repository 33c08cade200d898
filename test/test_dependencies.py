"""The README's Jazzy-machine dependency list covers every import of the package,
the launch file and the tests (found with ast), and package.xml declares the ROS ones."""

import ast
import os
import re
import sys
import xml.etree.ElementTree as ET

from support.ros_helpers import REPO

# import name -> the name a Jazzy user installs (apt package, or pip name for what Ubuntu lacks)
INSTALL_NAME = {
    "rclpy": "ros-jazzy-rclpy", "std_msgs": "ros-jazzy-std-msgs", "sensor_msgs": "ros-jazzy-sensor-msgs",
    "geometry_msgs": "ros-jazzy-geometry-msgs", "diagnostic_msgs": "ros-jazzy-diagnostic-msgs",
    "trajectory_msgs": "ros-jazzy-trajectory-msgs", "builtin_interfaces": "ros-jazzy-builtin-interfaces",
    "std_srvs": "ros-jazzy-std-srvs",
    "rosgraph_msgs": "ros-jazzy-rosgraph-msgs", "rcl_interfaces": "ros-jazzy-rcl-interfaces",
    "launch": "ros-jazzy-launch",
    "launch_ros": "ros-jazzy-launch-ros", "ament_index_python": "ros-jazzy-ament-index-python",
    "cv_bridge": "ros-jazzy-cv-bridge", "zmq": "python3-zmq", "msgpack": "python3-msgpack",
    "cv2": "python3-opencv", "numpy": "python3-numpy", "yaml": "python3-yaml", "setuptools": "python3-setuptools",
    "pytest": "python3-pytest", "hypothesis": "python3-hypothesis", "onnx": "onnx", "onnxruntime": "onnxruntime",
    # optional extras, named in the README's optional line; their tests skip without them
    "matplotlib": "matplotlib", "tensorrt": "tensorrt", "pycuda": "pycuda", "torch": "torch", "gr00t": "Isaac-GR00T",
    "tritonclient": "tritonclient", "huggingface_hub": "huggingface_hub",
    "simplejpeg": "simplejpeg",
    # session recording, replay and dataset export (docs/recording.md)
    "mcap": "mcap", "mcap_ros2": "mcap-ros2-support", "pyarrow": "pyarrow", "rosbags": "rosbags",
}
# package.xml keys for the ROS / rosdep-resolvable imports (pip-only ones are documented, not keyed)
ROSDEP_KEY = {
    "rclpy": "rclpy", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "geometry_msgs": "geometry_msgs",
    "diagnostic_msgs": "diagnostic_msgs", "trajectory_msgs": "trajectory_msgs", "std_srvs": "std_srvs",
    "builtin_interfaces": "builtin_interfaces", "rosgraph_msgs": "rosgraph_msgs", "rcl_interfaces": "rcl_interfaces", "launch": "launch",
    "launch_ros": "launch_ros", "ament_index_python": "ament_index_python", "cv_bridge": "cv_bridge",
    "zmq": "python3-zmq", "msgpack": "python3-msgpack", "cv2": "python3-opencv", "numpy": "python3-numpy",
    "yaml": "python3-yaml", "pytest": "python3-pytest", "hypothesis": "python3-hypothesis",
}
SOURCES = ("alfie_gr00t", "launch", "test", "setup.py")


def _files():
    for source in SOURCES:
        path = os.path.join(REPO, source)
        if os.path.isfile(path):
            yield path
            continue
        for root, _, names in os.walk(path):
            yield from (os.path.join(root, n) for n in names if n.endswith(".py"))


def third_party_imports() -> dict[str, set[str]]:
    local = {"alfie_gr00t", "support"} | {n[:-3] for n in os.listdir(os.path.join(REPO, "test")) if n.endswith(".py")}
    found: dict[str, set[str]] = {}
    for path in _files():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(os.path.relpath(path, REPO))
    return found


def _section(heading: str) -> str:
    """The section under `heading` in README.md or in whichever docs/*.md holds it."""
    candidates = [os.path.join(REPO, "README.md")] + sorted(
        os.path.join(REPO, "docs", n) for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md"))
    for path in candidates:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if heading in text:
            return text.split(heading, 1)[1].split("\n## ", 1)[0]
    raise AssertionError(f"no '{heading}' section in README.md or docs/")


def jazzy_section() -> str:
    return _section("## On a ROS 2 Jazzy machine")


def test_every_import_is_mapped():
    unknown = {m: sorted(files) for m, files in third_party_imports().items() if m not in INSTALL_NAME}
    assert not unknown, f"new third-party imports: list them in the README's Jazzy section and here: {unknown}"


def test_readme_lists_every_dependency():
    section = jazzy_section()
    missing = sorted({INSTALL_NAME[m] for m in third_party_imports() if m in INSTALL_NAME
                      and not re.search(rf"(?<![\w-]){re.escape(INSTALL_NAME[m])}(?![\w-])", section)})
    assert not missing, f"README 'On a ROS 2 Jazzy machine' does not list {missing}"


def test_package_xml_declares_the_ros_dependencies():
    tree = ET.parse(os.path.join(REPO, "package.xml"))
    declared = {e.text for e in tree.getroot() if e.tag in ("depend", "exec_depend", "test_depend", "build_depend")}
    imports = third_party_imports()
    missing = sorted(ROSDEP_KEY[m] for m in imports if m in ROSDEP_KEY and ROSDEP_KEY[m] not in declared)
    assert not missing, f"package.xml lacks {missing}"
    test_only = {e.text for e in tree.getroot() if e.tag == "test_depend"}
    assert {"python3-pytest", "python3-hypothesis"} <= test_only


def test_pinned_requirements_cover_the_message_packages():
    with open(os.path.join(REPO, "requirements.txt"), encoding="utf-8") as f:
        pinned = {line.split("==")[0].split("[")[0].strip() for line in f if "==" in line}
    for module in ("rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "diagnostic_msgs", "trajectory_msgs"):
        assert INSTALL_NAME[module] in pinned, f"requirements.txt does not pin {INSTALL_NAME[module]}"


# -- Humble (the robot: Jetson, Python 3.10) -----------------------------------------------------------
def _pins(name: str) -> dict[str, str]:
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return {line.split("==")[0].split("[")[0].strip().lower(): line.split("==")[1].split(";")[0].strip()
                for line in f if "==" in line and not line.lstrip().startswith("#")}


def test_humble_pins_keep_numpy_1_and_come_from_apt_for_ros():
    pins = _pins("requirements-humble.txt")
    assert pins["numpy"].startswith("1."), "Humble's cv_bridge and JetPack's OpenCV need numpy < 2"
    assert not [p for p in pins if p.startswith("ros-")], "on Humble rclpy and the messages come from apt"
    major, minor = (int(x) for x in pins["opencv-python-headless"].split(".")[:2])
    assert (major, minor) <= (4, 10), "OpenCV wheels after 4.10 need numpy >= 2 on Python 3.10"
    jazzy = _pins("requirements.txt")
    plain = {m for m, name in INSTALL_NAME.items() if name in ("python3-zmq", "python3-msgpack", "python3-yaml",
                                                               "python3-numpy", "python3-pytest",
                                                               "python3-hypothesis")}
    assert {"pyzmq", "msgpack", "pyyaml", "numpy", "pytest", "hypothesis", "onnx", "onnxruntime",
            "simplejpeg"} <= set(pins), "the same pip set as requirements.txt, with Python 3.10 versions"
    assert plain and set(jazzy) - set(pins) <= {"colcon-common-extensions", "catkin-pkg", "setuptools",
                                                 "opencv-python-headless"} | {p for p in jazzy if p.startswith("ros-")}


def test_robot_doc_lists_the_humble_apt_packages():
    path = os.path.join(REPO, "docs", "robot-jetson.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ros_imports = {m for m in third_party_imports() if m in ROSDEP_KEY and m not in ("launch", "launch_ros")
                   and not ROSDEP_KEY[m].startswith("python3-")}
    missing = sorted(f"ros-humble-{ROSDEP_KEY[m].replace('_', '-')}" for m in ros_imports
                     if f"ros-humble-{ROSDEP_KEY[m].replace('_', '-')}" not in text)
    assert not missing, f"docs/robot-jetson.md does not list {missing}"
    assert "requirements-humble.txt" in text and "ros-humble-launch-ros" in text
