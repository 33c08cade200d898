"""Shared fixtures. Nothing leaves loopback: DDS stays on localhost and every ROS test
gets a context with a domain id of its own; ZeroMQ binds IPC paths or 127.0.0.1."""

import ast
import os
import shutil
import socket
import tempfile

from alfie_gr00t import discovery  # a base module: imports nothing of ROS

discovery.confine_to_localhost()  # ROS_LOCALHOST_ONLY=1 on Humble, ROS_AUTOMATIC_DISCOVERY_RANGE after
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

import pytest  # noqa: E402

from alfie_gr00t import layout
from alfie_gr00t.wire import images  # noqa: E402

from support.frames import make_frame  # noqa: E402
from support.ros_helpers import next_domain_id, ros_free_run  # noqa: E402


# -- ROS-free runs (`make test`'s Python 3.10 leg) ------------------------------------------------
# ALFIE_ROS_FREE=1 runs only the test modules that need no ROS: a module that imports (at module
# level, itself or through the package or test modules it imports) any ROS package is collected as
# one skip that names the import chain. Without the variable nothing is skipped: a missing rclpy is
# an import error, as always.
ROS_MODULES = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "diagnostic_msgs", "trajectory_msgs",
               "builtin_interfaces", "rosgraph_msgs", "std_srvs", "rcl_interfaces", "launch", "launch_ros",
               "launch_testing", "ament_index_python", "cv_bridge"}
# Test modules that load without ROS but whose tests start ROS nodes through a lazy import.
ROS_AT_RUN_TIME = {
    "test_bench.py": "its benchmark runs the client's command loop on rclpy (skipped there without it)",
    "test_bench_motion.py": "it runs the benchmark's nodes in process (rclpy, geometry_msgs)",
}
_TEST_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_TEST_DIR)


def _module_file(name: str) -> str | None:
    """The file of a local module: the package's (alfie_gr00t.x.y), the test support package's
    (support.x) or a test module (test/x.py)."""
    parts = name.split(".")
    if parts[0] == "alfie_gr00t":
        base = os.path.join(_REPO, *parts)
    elif parts[0] == "support":
        base = os.path.join(_TEST_DIR, *parts)
    else:
        candidate = os.path.join(_TEST_DIR, parts[0] + ".py")
        return candidate if len(parts) == 1 and os.path.isfile(candidate) else None
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _module_level_imports(path: str) -> list[str]:
    """Names imported when the module loads: not those inside functions (lazy) or guarded by
    `try: ... except ImportError` (optional)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: list[str] = []

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                names.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
                names.extend(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            elif isinstance(node, ast.Try):
                if not any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                           for h in node.handlers):
                    visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.If, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
    visit(tree.body)
    return names


_ros_chains: dict[str, tuple[str, ...] | None] = {}


def ros_import_chain(path: str, _seen: frozenset = frozenset()) -> tuple[str, ...] | None:
    """How loading `path` imports ROS, e.g. ("test_x", "alfie_gr00t.nodes.runner", "rclpy"); None when
    it does not."""
    if path in _ros_chains:
        return _ros_chains[path]
    chain = None
    for name in _module_level_imports(path):
        if name.split(".")[0] in ROS_MODULES:
            chain = (name.split(".")[0],)
            break
        local = _module_file(name)
        if local is not None and local != path and local not in _seen:
            sub = ros_import_chain(local, _seen | {path})
            if sub is not None:
                chain = (name,) + sub
                break
    _ros_chains[path] = chain
    return chain


class _NeedsRos(pytest.File):
    """Stands in for a test module that needs ROS in a ROS-free run: one skip with the reason."""

    reason = ""

    def collect(self):
        pytest.skip(self.reason)


def pytest_pycollect_makemodule(module_path, parent):
    if not ros_free_run():
        return None
    chain = ros_import_chain(str(module_path))
    if chain is not None:
        why = f"imports {' -> '.join(chain)}"
    elif module_path.name in ROS_AT_RUN_TIME:
        why = ROS_AT_RUN_TIME[module_path.name]
    else:
        return None
    item = _NeedsRos.from_parent(parent, path=module_path)
    item.reason = f"{module_path.name}: ROS-free run (ALFIE_ROS_FREE=1) skips it: {why}"
    return item


@pytest.fixture
def ipc_dir():
    path = tempfile.mkdtemp(prefix="ag_", dir="/tmp")  # short: Unix socket paths are limited to ~107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ipc_path(ipc_dir):
    return os.path.join(ipc_dir, "groot.sock")


@pytest.fixture
def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jpeg_images():
    return {name: images.encode_jpeg(make_frame(seed=i), 90) for i, name in enumerate(layout.CAMERA_NAMES)}


@pytest.fixture
def ros_context():
    """An initialised rclpy context on its own domain id; shut down after the test. In the ROS-free run a
    test that asks for it (in a module that loads ROS only lazily) is skipped, saying so."""
    if ros_free_run():
        pytest.skip("ROS-free run (ALFIE_ROS_FREE=1): this test needs rclpy (ros_context)")
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    yield context
    context.try_shutdown()
