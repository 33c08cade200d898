"""rosbag2's metadata.yaml, version 9 (ROS 2 Jazzy), and the QoS profiles it and MCAP channels carry.

A bag directory holds `metadata.yaml`:

    rosbag2_bagfile_information:
      version: 9
      storage_identifier: mcap
      duration: {nanoseconds: N}
      starting_time: {nanoseconds_since_epoch: N}
      message_count: N
      topics_with_message_count:
        - topic_metadata: {name, type, serialization_format: cdr,
                           offered_qos_profiles: [ {history, depth, reliability, durability, deadline,
                                                    lifespan, liveliness, liveliness_lease_duration,
                                                    avoid_ros_namespace_conventions} ],
                           type_description_hash}
          message_count: N
      compression_format: ""
      compression_mode: ""
      relative_file_paths: [<bag>_0.mcap, ...]
      files: [ {path, starting_time, duration, message_count}, ... ]
      custom_data: {...}
      ros_distro: jazzy

From version 9 the QoS policies are names (`keep_last`, `reliable`, ...) and `offered_qos_profiles`
is a YAML list; an MCAP channel carries the same list dumped as a YAML string in its
`offered_qos_profiles` metadata entry. Infinite durations are {sec: 9223372036, nsec: 854775807}.
ROS-free (PyYAML).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

VERSION = 9
FILE_NAME = "metadata.yaml"
ROOT_KEY = "rosbag2_bagfile_information"
INFINITE = {"sec": 9223372036, "nsec": 854775807}  # RMW_DURATION_INFINITE
QOS_KEYS = ("history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
            "liveliness_lease_duration", "avoid_ros_namespace_conventions")


class MetadataError(ValueError):
    """metadata.yaml is missing a field or is not rosbag2's format; the message names what."""


def qos_profile(*, history: str = "keep_last", depth: int = 10, reliability: str = "reliable",
                durability: str = "volatile", liveliness: str = "automatic", deadline=None, lifespan=None,
                liveliness_lease_duration=None, avoid_ros_namespace_conventions: bool = False) -> dict:
    """One offered QoS profile as rosbag2 version 9 writes it (durations None = infinite)."""
    return {"history": history, "depth": int(depth), "reliability": reliability, "durability": durability,
            "deadline": dict(deadline or INFINITE), "lifespan": dict(lifespan or INFINITE),
            "liveliness": liveliness, "liveliness_lease_duration": dict(liveliness_lease_duration or INFINITE),
            "avoid_ros_namespace_conventions": bool(avoid_ros_namespace_conventions)}


def qos_yaml(profiles: list[dict]) -> str:
    """The MCAP channel's `offered_qos_profiles` entry: the list as a YAML string."""
    return yaml.safe_dump(list(profiles), sort_keys=False, default_flow_style=False) if profiles else ""


def parse_qos(value) -> list[dict]:
    """offered_qos_profiles from metadata.yaml (a list) or an MCAP channel / older bag (a YAML string)."""
    if not value:
        return []
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise MetadataError(f"offered_qos_profiles is not YAML: {exc}") from exc
    if not isinstance(value, list):
        raise MetadataError(f"offered_qos_profiles must be a list, got {type(value).__name__}")
    return [dict(p) for p in value if isinstance(p, dict)]


@dataclass
class TopicInfo:
    name: str
    type: str
    offered_qos_profiles: list = field(default_factory=list)
    type_description_hash: str = ""
    serialization_format: str = "cdr"
    message_count: int = 0


@dataclass
class FileInfo:
    path: str  # relative to the bag directory
    starting_time_ns: int = 0
    duration_ns: int = 0
    message_count: int = 0


@dataclass
class BagMetadata:
    files: list  # FileInfo, in order
    topics: list  # TopicInfo, in order of first appearance
    storage_identifier: str = "mcap"
    compression_format: str = ""
    compression_mode: str = ""
    custom_data: dict = field(default_factory=dict)
    ros_distro: str = "jazzy"
    version: int = VERSION

    @property
    def message_count(self) -> int:
        return sum(f.message_count for f in self.files)

    @property
    def starting_time_ns(self) -> int:
        starts = [f.starting_time_ns for f in self.files if f.message_count]
        return min(starts) if starts else 0

    @property
    def duration_ns(self) -> int:
        ends = [f.starting_time_ns + f.duration_ns for f in self.files if f.message_count]
        return max(ends) - self.starting_time_ns if ends else 0


def to_dict(meta: BagMetadata) -> dict:
    """The document rosbag2 writes, keys in its order."""
    info = {
        "version": meta.version,
        "storage_identifier": meta.storage_identifier,
        "duration": {"nanoseconds": meta.duration_ns},
        "starting_time": {"nanoseconds_since_epoch": meta.starting_time_ns},
        "message_count": meta.message_count,
        "topics_with_message_count": [{
            "topic_metadata": {"name": t.name, "type": t.type, "serialization_format": t.serialization_format,
                               "offered_qos_profiles": list(t.offered_qos_profiles),
                               "type_description_hash": t.type_description_hash},
            "message_count": t.message_count} for t in meta.topics],
        "compression_format": meta.compression_format,
        "compression_mode": meta.compression_mode,
        "relative_file_paths": [f.path for f in meta.files],
        "files": [{"path": f.path, "starting_time": {"nanoseconds_since_epoch": f.starting_time_ns},
                   "duration": {"nanoseconds": f.duration_ns}, "message_count": f.message_count}
                  for f in meta.files],
        "custom_data": dict(meta.custom_data) or None,
        "ros_distro": meta.ros_distro,
    }
    return {ROOT_KEY: info}


def dumps(meta: BagMetadata) -> str:
    return yaml.safe_dump(to_dict(meta), sort_keys=False, default_flow_style=False, allow_unicode=True)


def write(directory: str, meta: BagMetadata) -> str:
    """Write `<directory>/metadata.yaml` atomically (a crash leaves the old one or the new one)."""
    path = os.path.join(directory, FILE_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(meta))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _field(info: dict, key: str, where: str):
    if key not in info:
        raise MetadataError(f"{where}: no '{key}'")
    return info[key]


def _ns(node, key: str, where: str) -> int:
    value = _field(node if isinstance(node, dict) else {}, key, where)
    return int(value)


def read(directory: str) -> BagMetadata:
    """Parse `<directory>/metadata.yaml` (versions 4 to 9: the fields a reader needs)."""
    path = os.path.join(directory, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise MetadataError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get(ROOT_KEY), dict):
        raise MetadataError(f"{path} has no '{ROOT_KEY}' mapping: not a rosbag2 metadata file")
    info = doc[ROOT_KEY]
    topics = []
    for entry in _field(info, "topics_with_message_count", path) or []:
        tm = _field(entry, "topic_metadata", path)
        topics.append(TopicInfo(
            name=_field(tm, "name", path), type=_field(tm, "type", path),
            serialization_format=tm.get("serialization_format", "cdr"),
            offered_qos_profiles=parse_qos(tm.get("offered_qos_profiles")),
            type_description_hash=tm.get("type_description_hash", "") or "",
            message_count=int(entry.get("message_count", 0))))
    files = [FileInfo(path=_field(f, "path", path),
                      starting_time_ns=_ns(_field(f, "starting_time", path), "nanoseconds_since_epoch", path),
                      duration_ns=_ns(_field(f, "duration", path), "nanoseconds", path),
                      message_count=int(f.get("message_count", 0)))
             for f in info.get("files") or []]
    if not files:  # before version 5: only the paths
        files = [FileInfo(path=p) for p in _field(info, "relative_file_paths", path) or []]
    return BagMetadata(files=files, topics=topics, storage_identifier=str(_field(info, "storage_identifier", path)),
                       compression_format=info.get("compression_format", "") or "",
                       compression_mode=info.get("compression_mode", "") or "",
                       custom_data=dict(info.get("custom_data") or {}), ros_distro=info.get("ros_distro", "") or "",
                       version=int(_field(info, "version", path)))
