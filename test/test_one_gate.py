"""Every motion command leaves through the one gate (SPEC §4): read from the code, not assumed.

The client's motion publishers (joint commands, base twist, joint trajectory) are created in one
place and published only inside `GrootClient._publish`, the MotionGate's output sink; `_publish` is
referenced only as that sink. Debug topics (raw chunks included) are not motion topics and use other
names.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "alfie_gr00t"
CLIENT = PACKAGE / "nodes" / "groot_client.py"
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


def test_the_gate_sink_is_wired_only_to_the_gate():
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "_publish"]
    assert len(uses) == 1, "self._publish is referenced outside the MotionGate's output"
    gates = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "MotionGate"]
    assert len(gates) == 1 and any(k.arg == "output" and isinstance(k.value, ast.Attribute)
                                   and k.value.attr == "_publish" for k in gates[0].keywords)


def test_no_other_module_creates_a_motion_topic():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for topic in MOTION_TOPICS:
            if f'"{topic}"' in text and path != CLIENT:
                raise AssertionError(f"{path.relative_to(PACKAGE.parent)} names the motion topic {topic}")


def test_the_checker_finds_a_publish_outside_the_sink():
    source = "class C:\n    def tick(self):\n        self.twist_pub.publish(t)\n    def _publish(self, c):\n        pass\n"
    assert motion_publish_sites(source) == ["tick"]
