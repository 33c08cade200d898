"""The topic map: which topics of a bag of the robot make which part of a GR00T dataset. ROS-free.

A YAML file (documented example: config/topic_map.example.yaml, docs/recording.md):

    cameras:                   # dataset camera name -> sensor_msgs/Image or CompressedImage topic
      left_wide: /alfie/cameras/left_wide/image_raw/compressed
    state:
      joints: /alfie/joint_states      # sensor_msgs/JointState, matched by the layout's joint names
      base: /alfie/base_velocity       # geometry_msgs/Twist -> dims 0-5 (or base: zero)
      # array: /alfie/state            # instead: std_msgs/Float32MultiArray of all the dims
    action:
      source: joint_state              # joint_state | joint_trajectory | array | next_state
      topic: /alfie/teleop/joint_commands
      base: /alfie/cmd_vel             # geometry_msgs/Twist -> dims 0-5 (or base: zero)
    task:
      topic: /alfie/task               # std_msgs/String; or text: "pick up the can"
    episodes:
      split: bag                       # bag: one episode per bag | marker
      marker: /alfie/episode           # std_msgs/Bool: true starts an episode, false ends it;
                                       # std_msgs/String: each message starts the next one
    time: receive                      # receive (the bag's log time) | header (header.stamp)

Everything is checked when the map is loaded; a mistake is named with its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from alfie_gr00t.dataset.episode import ExportError

ACTION_SOURCES = ("joint_state", "joint_trajectory", "array", "next_state")
SPLITS = ("bag", "marker")
TIMES = ("receive", "header")
ZERO = "zero"


@dataclass(frozen=True)
class TopicMap:
    cameras: dict  # name -> topic, in dataset order
    state_joints: str = ""
    state_base: str = ""  # a Twist topic, "zero", or "" (no base in the state: then the layout must not need it)
    state_array: str = ""
    action_source: str = "joint_state"
    action_topic: str = ""
    action_base: str = ""
    task_topic: str = ""
    task_text: str = ""
    split: str = "bag"
    marker: str = ""
    time: str = "receive"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.cameras or not all(isinstance(k, str) and isinstance(v, str) and v.startswith("/")
                                       for k, v in self.cameras.items()):
            raise ExportError("topic map: cameras must map each camera name to a topic (/...)")
        if bool(self.state_joints or self.state_base) == bool(self.state_array):
            raise ExportError("topic map: state needs either joints (+ base) or array")
        if self.action_source not in ACTION_SOURCES:
            raise ExportError(f"topic map: action.source must be one of {ACTION_SOURCES}, got {self.action_source!r}")
        if (self.action_source == "next_state") == bool(self.action_topic):
            raise ExportError("topic map: action.topic is required for " + self.action_source
                              if self.action_source != "next_state" else
                              "topic map: action.source next_state takes no action.topic (the next state is the action)")
        if bool(self.task_topic) == bool(self.task_text):
            raise ExportError("topic map: task needs either topic or text (or --task)")
        if self.split not in SPLITS:
            raise ExportError(f"topic map: episodes.split must be one of {SPLITS}, got {self.split!r}")
        if self.split == "marker" and not self.marker:
            raise ExportError("topic map: episodes.split marker needs episodes.marker (a Bool or String topic)")
        if self.time not in TIMES:
            raise ExportError(f"topic map: time must be one of {TIMES}, got {self.time!r}")
        for key in ("state_base", "action_base"):
            value = getattr(self, key)
            if value and value != ZERO and not value.startswith("/"):
                raise ExportError(f"topic map: {key.replace('_', '.')} must be a Twist topic or 'zero', got {value!r}")
        if self.extra:
            raise ExportError(f"topic map: unknown keys {sorted(self.extra)}")


def _section(doc: dict, key: str) -> dict:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise ExportError(f"topic map: {key} must be a mapping")
    return value


def from_dict(doc: dict, task_text: str = "") -> TopicMap:
    if not isinstance(doc, dict):
        raise ExportError("topic map: the file must be a YAML mapping")
    known = {"cameras", "state", "action", "task", "episodes", "time"}
    state, action, task, episodes = (_section(doc, k) for k in ("state", "action", "task", "episodes"))
    extra = {k: v for k, v in doc.items() if k not in known}
    for name, section, keys in (("state", state, {"joints", "base", "array"}),
                                ("action", action, {"source", "topic", "base"}),
                                ("task", task, {"topic", "text"}), ("episodes", episodes, {"split", "marker"})):
        extra.update({f"{name}.{k}": v for k, v in section.items() if k not in keys})
    text = task_text or str(task.get("text", "") or "")
    return TopicMap(
        cameras=dict(_section(doc, "cameras")), state_joints=str(state.get("joints", "") or ""),
        state_base=str(state.get("base", "") or ""), state_array=str(state.get("array", "") or ""),
        action_source=str(action.get("source", "joint_state")), action_topic=str(action.get("topic", "") or ""),
        action_base=str(action.get("base", "") or ""),
        task_topic="" if task_text else str(task.get("topic", "") or ""), task_text=text,
        split=str(episodes.get("split", "bag")), marker=str(episodes.get("marker", "") or ""),
        time=str(doc.get("time", "receive")), extra=extra)


def load(path: str, task_text: str = "") -> TopicMap:
    """Read and check a topic map file; `task_text` (--task) replaces the map's task."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ExportError(f"topic map {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExportError(f"topic map {path} is not YAML: {exc}") from exc
    try:
        return from_dict(doc, task_text)
    except ExportError as exc:
        raise ExportError(f"{path}: {exc}") from exc
