"""config/foxglove_layout.json names only topics the real nodes publish and fields their message types have.

The real groot_server (mock), groot_client and sim robot run in this process with the launch namespace
`alfie` (tools/rig.py); every topic a panel names must have a publisher among them with a fitting type,
and every message path (`/topic.field[index]{key=="value"}...`, Foxglove's syntax) must walk the
type's fields (rosidl's get_fields_and_field_types). The plotted paths are also evaluated on real
messages: each gives a number, and a JointState path `.position[i]` labelled "<joint> ..." lands on
that joint's name. A layout with a broken topic or field is reported (the checker can fail).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re

import pytest
import rclpy  # noqa: F401 - the real nodes run in this process (a ROS-free run skips the module)

from support.ros_helpers import next_domain_id
from support.ros_helpers import REPO, wait_for

LAYOUT = os.path.join(REPO, "config", "foxglove_layout.json")
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}
DIAGNOSTIC_TYPES = {"diagnostic_msgs/msg/DiagnosticArray"}
PLOTTED_TYPES = {"/alfie/groot_client/joint_commands": "sensor_msgs/msg/JointState",
                 "/alfie/joint_states": "sensor_msgs/msg/JointState",
                 "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
                 "/alfie/groot_client/debug/gate": "diagnostic_msgs/msg/DiagnosticStatus"}
_TOKEN = re.compile(r'\.(?P<field>\w+)|\[(?P<index>\d+)\]|\[(?P<slice>:)\]|\{(?P<key>\w+)==(?P<value>"[^"]*"|[\w.\-]+)\}')


def load_layout() -> dict:
    with open(LAYOUT, encoding="utf-8") as f:
        return json.load(f)


def panel_paths(layout: dict) -> list[tuple[str, str, set | None]]:
    """(panel id, message path or topic, acceptable types or None for any) for every panel."""
    found = []
    for panel, config in layout["configById"].items():
        kind = panel.split("!", 1)[0]
        if kind == "Image":
            found.append((panel, config["imageMode"]["imageTopic"], IMAGE_TYPES))
        elif kind in ("Plot", "StateTransitions"):
            found.extend((panel, p["value"], None) for p in config["paths"])
        elif kind == "RawMessages":
            found.append((panel, config["topicPath"], None))
        elif kind in ("DiagnosticSummary", "DiagnosticStatusPanel"):
            found.append((panel, config["topicToRender"], DIAGNOSTIC_TYPES))
        else:
            raise AssertionError(f"{panel}: a panel kind this test does not know")
    return found


def split_path(path: str) -> tuple[str, list[dict]]:
    """'/a/b.position[1]' -> ('/a/b', [{'field': 'position'}, {'index': '1'}])."""
    dot = path.find(".")
    brace = path.find("{")
    ends = [i for i in (dot, brace) if i >= 0]
    topic = path[:min(ends)] if ends else path
    rest, tokens = path[len(topic):], []
    while rest:
        match = _TOKEN.match(rest)
        if match is None:
            raise ValueError(f"cannot parse {rest!r} in {path!r}")
        tokens.append({k: v for k, v in match.groupdict().items() if v is not None})
        rest = rest[match.end():]
    return topic, tokens


def message_class(type_name: str):
    """'pkg/msg/Type' or 'pkg/Type' -> the generated class."""
    parts = type_name.split("/")
    return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[-1])


def _element(field_type: str):
    """rosidl field type -> ('seq', element) | ('msg', class) | ('prim', name)."""
    sequence = re.fullmatch(r"sequence<(.+?)(?:, \d+)?>", field_type) or re.fullmatch(r"(.+)\[\d+\]", field_type)
    if sequence:
        return "seq", sequence.group(1)
    if "/" in field_type:
        return "msg", message_class(field_type)
    return "prim", field_type


def walk_fields(msg_type, tokens: list[dict]) -> str | None:
    """None when the tokens walk the type's fields, else what is wrong."""
    kind, current = "msg", msg_type
    for token in tokens:
        if "field" in token:
            if kind != "msg":
                return f".{token['field']} on a {kind} ({current})"
            fields = current.get_fields_and_field_types()
            if token["field"] not in fields:
                return f"{current.__name__} has no field {token['field']!r} (fields: {sorted(fields)})"
            kind, current = _element(fields[token["field"]])
        elif "index" in token or "slice" in token:
            if kind != "seq":
                return f"[...] on a {kind} ({current})"
            kind, current = _element(current)
        else:  # a filter {key==value} on the elements
            if kind != "msg" or token["key"] not in current.get_fields_and_field_types():
                return f"filter on {token['key']!r}, not a field of {current}"
    return None


def evaluate(msg, tokens: list[dict]) -> list:
    """The values a message path selects in a real message."""
    values = [msg]
    for token in tokens:
        if "field" in token:
            values = [getattr(v, token["field"]) for v in values]
        elif "index" in token:
            values = [v[int(token["index"])] for v in values if len(v) > int(token["index"])]
        elif "slice" in token:
            values = [item for v in values for item in v]
        else:
            wanted = token["value"].strip('"')
            values = [v for v in values if str(getattr(v, token["key"])) == wanted]
    return values


def check_layout(layout: dict, publishers: dict[str, set[str]]) -> list[str]:
    """Every problem of the layout against {topic: its published types}."""
    problems = []
    for panel, path, types in panel_paths(layout):
        try:
            topic, tokens = split_path(path)
        except ValueError as exc:
            problems.append(f"{panel}: {exc}")
            continue
        published = publishers.get(topic)
        if not published:
            problems.append(f"{panel}: no node publishes {topic}")
            continue
        if types is not None and not published & types:
            problems.append(f"{panel}: {topic} is {sorted(published)}, expected one of {sorted(types)}")
        for type_name in published:
            problem = walk_fields(message_class(type_name), tokens)
            if problem:
                problems.append(f"{panel}: {path}: {problem}")
    return problems


@pytest.fixture(scope="module")
def rig_graph():
    """The real nodes in namespace alfie: their published topics, and one real message per plotted topic."""
    import tempfile

    from alfie_gr00t.tools.rig import NodeRig

    layout = load_layout()
    plotted = {}
    for panel, path, _ in panel_paths(layout):
        if panel.startswith(("Plot", "StateTransitions")):
            plotted.setdefault(split_path(path)[0], []).append(path)
    directory = tempfile.mkdtemp(prefix="ag_", dir="/tmp")
    received: dict[str, list] = {topic: [] for topic in plotted}
    with NodeRig(next_domain_id(), os.path.join(directory, "groot.sock"), server={"warmup_runs": 0},
                 client={"encode_threads": 1}, robot={"camera_width": 160, "camera_height": 120}) as rig:
        names = {rig.server.get_name(), rig.client.get_name(), rig.robot.get_name()}
        publishers: dict[str, set[str]] = {}

        def graph():
            publishers.clear()
            for topic, _ in rig.monitor.get_topic_names_and_types():
                types = {i.topic_type for i in rig.monitor.get_publishers_info_by_topic(topic) if i.node_name in names}
                if types:
                    publishers[topic] = types
            return publishers

        for topic in plotted:  # the type the node publishes it with (the checker verifies it on the graph)
            rig.subscribe(message_class(PLOTTED_TYPES[topic]), topic, received[topic].append)
        rig.spin()
        assert rig.activate(timeout_s=15.0), rig.client.status()
        wait_for(lambda: all(len(v) >= 3 for v in received.values()), timeout=10.0)
        wait_for(lambda: len(graph()) > 10, timeout=5.0)
        graph()
        yield layout, dict(publishers), received, plotted


def test_every_topic_and_field_in_the_layout_exists_on_the_real_nodes(rig_graph):
    layout, publishers, _, _ = rig_graph
    assert len(panel_paths(layout)) >= 12
    assert check_layout(layout, publishers) == []
    images = [p for p, _, t in panel_paths(layout) if t is IMAGE_TYPES]
    assert len(images) == 4  # the four policy views


def test_plotted_paths_give_numbers_on_real_messages_and_hit_the_labelled_joint(rig_graph):
    layout, _, received, plotted = rig_graph
    labels = {p["value"]: p.get("label", "") for c in layout["configById"].values() for p in c.get("paths", [])}
    for topic, paths in plotted.items():
        assert received[topic], f"no message on {topic}"
        for path in paths:
            # /diagnostics carries each node's array: the path must pick one value out of the client's
            hits = [(m, v) for m in received[topic] for v in [evaluate(m, split_path(path)[1])] if v]
            assert hits and all(len(v) == 1 for _, v in hits), (path, hits[:1])
            msg, values = hits[-1]
            label = labels[path]
            if "Plot" in " ".join(k for k, c in layout["configById"].items() if path in json.dumps(c)):
                assert isinstance(values[0], float), (path, values)
            index = re.search(r"\.position\[(\d+)\]$", path)
            if index:  # JointState: the joint the label names sits at that index
                assert msg.name[int(index.group(1))] == label.split()[0], (path, label, list(msg.name))


def test_a_broken_topic_or_field_is_reported(rig_graph):
    layout, publishers, _, _ = rig_graph
    broken = copy.deepcopy(layout)
    broken["configById"]["Image!left_wide"]["imageMode"]["imageTopic"] = "/alfie/groot_client/debug/image/left_wid"
    plot = broken["configById"]["Plot!commanded_vs_measured"]["paths"]
    plot[0]["value"] = plot[0]["value"].replace(".position[", ".positon[")
    broken["configById"]["DiagnosticSummary!all"]["topicToRender"] = "/alfie/groot_client/status"
    problems = check_layout(broken, publishers)
    assert len(problems) == 3, problems
    assert "no node publishes /alfie/groot_client/debug/image/left_wid" in problems[0]
    assert any("no field 'positon'" in p for p in problems)
    assert any("DiagnosticArray" in p and "std_msgs/msg/String" in p for p in problems)


def test_the_client_status_panel_selects_the_name_and_hardware_id_the_client_publishes(rig_graph):
    """Foxglove's Diagnostics - Detail panel finds a status by hardware id and name: both must be what
    the client publishes (and records). The hardware id is the client's server address, so the layout
    selects the default one; the rig's client, on its own IPC path, publishes its own address there."""
    from alfie_gr00t.client.config import ClientConfig
    from alfie_gr00t.nodes.diagnostics import client_diagnostics

    layout, _, received, _ = rig_graph
    panel = layout["configById"]["DiagnosticStatusPanel!client"]
    default = client_diagnostics({"state": "IDLE", "server_address": ClientConfig().address})
    assert (panel["selectedName"], panel["selectedHardwareId"]) == (default.name, default.hardware_id)
    published = [s for m in received["/diagnostics"] for s in m.status if s.name == panel["selectedName"]]
    assert published, "the client published no status under the panel's name"
    assert len({s.hardware_id for s in published}) == 1  # one stable id: the detail panel keeps finding it
    assert published[0].hardware_id.startswith("ipc://") and published[0].hardware_id.endswith("/groot.sock")
