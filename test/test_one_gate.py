"""Every motion command leaves through the one gate (docs/design.md#one-gate): read from the code, not assumed.

The client's motion publishers (joint commands, base twist, joint trajectory) are created in one
place and published only inside `GrootClient._publish`; `_publish` is referenced only as the output
handed to the ROS-free `ClientCore`, which builds the one MotionGate with exactly that output and
nothing else. Debug topics (raw chunks included) are not motion topics and use other names.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "alfie_gr00t"
CLIENT = PACKAGE / "nodes" / "groot_client.py"
CORE = PACKAGE / "client" / "core.py"
MOTION_TOPICS = {"~/joint_commands", "~/cmd_vel", "~/joint_trajectory"}
MOTION_PUBLISHERS = {"joint_pub", "twist_pub", "trajectory_pub"}


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def motion_publish_sites(source: str) -> list[str]:
    """Names of the functions that call <motion publisher>.publish(...)."""
    sites = []
    for fn in _functions(ast.parse(source)):
        for node in ast.walk(fn):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "publish"
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in MOTION_PUBLISHERS):
                sites.append(fn.name)
    return sites


def test_motion_publishers_publish_only_in_the_gate_sink():
    assert set(motion_publish_sites(CLIENT.read_text(encoding="utf-8"))) == {"_publish"}


def _calls(tree, name: str) -> list:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == name]


def test_the_gate_sink_is_wired_only_to_the_gate():
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "_publish"]
    assert len(uses) == 1, "self._publish is referenced outside the MotionGate's output"
    cores = _calls(tree, "ClientCore")
    assert len(cores) == 1 and any(k.arg == "output" and isinstance(k.value, ast.Attribute)
                                   and k.value.attr == "_publish" for k in cores[0].keywords)
    assert not _calls(tree, "MotionGate"), "the node builds no gate of its own"
    core = ast.parse(CORE.read_text(encoding="utf-8"))
    init = next(fn for fn in _functions(core) if fn.name == "__init__")
    gates = _calls(core, "MotionGate")
    assert len(gates) == 1 and any(k.arg == "output" and isinstance(k.value, ast.Name) and k.value.id == "output"
                                   for k in gates[0].keywords), "the core's one gate outputs to the node's sink"
    assert "output" in [a.arg for a in init.args.args + init.args.kwonlyargs]
    outputs = [n for n in ast.walk(core) if isinstance(n, ast.Name) and n.id == "output"]
    assert len(outputs) == 1, "the core uses the node's sink for anything but its gate"


def test_only_the_core_builds_a_motion_gate():
    for path in PACKAGE.rglob("*.py"):
        if path not in (CORE, PACKAGE / "client" / "safety.py") and _calls(ast.parse(path.read_text("utf-8")),
                                                                           "MotionGate"):
            raise AssertionError(f"{path.relative_to(PACKAGE.parent)} builds a MotionGate")


def motion_publishers_created(source: str) -> list[str]:
    """The motion topics a module creates publishers for (any create_*publisher call naming one)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("create_") and node.func.attr.endswith("publisher")):
            found += [a.value for a in ast.walk(node) if isinstance(a, ast.Constant) and a.value in MOTION_TOPICS]
    return found


def test_no_other_module_creates_a_motion_topic():
    """Reading a recording's ~/joint_commands is fine; publishing on it is the client's alone."""
    assert sorted(motion_publishers_created(CLIENT.read_text(encoding="utf-8"))) == sorted(MOTION_TOPICS)
    for path in PACKAGE.rglob("*.py"):
        if path != CLIENT:
            created = motion_publishers_created(path.read_text(encoding="utf-8"))
            assert not created, f"{path.relative_to(PACKAGE.parent)} publishes the motion topic(s) {created}"


def test_the_checker_finds_a_motion_publisher():
    assert motion_publishers_created('p = node.create_publisher(Twist, "~/cmd_vel", 10)') == ["~/cmd_vel"]
    assert motion_publishers_created('topics = {"~/cmd_vel": 1}') == []


def test_the_checker_finds_a_publish_outside_the_sink():
    source = "class C:\n    def tick(self):\n        self.twist_pub.publish(t)\n    def _publish(self, c):\n        pass\n"
    assert motion_publish_sites(source) == ["tick"]
