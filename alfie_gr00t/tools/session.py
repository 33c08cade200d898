"""Read a recorded session (a rosbag2 bag as alfie_gr00t.nodes.recorder writes it, or a bare .mcap of
an older session) into arrays.

Needs no ROS: messages are decoded from the schemas stored in the bag (mcap-ros2-support), read by
alfie_gr00t.bag.reader. Tolerant: a bag whose recorder was killed (no metadata.yaml, last file
without a summary) is read up to its last complete chunk and `Session.warnings` says so.

Topics are matched by their last components, whatever the node's namespace:
`.../debug/image/<camera>`, `.../debug/state`, `.../debug/task`, `.../debug/chunk`,
`.../debug/chunk_scheduled`, `.../debug/gate`, `.../joint_commands`, `.../cmd_vel`, `.../status`;
the state inputs by type (a JointState, Twist or Float32MultiArray on any other topic).
Observation messages belong together when their MCAP publish_time (the capture time) is equal
(within 1 microsecond).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t import layout


class SessionError(RuntimeError):
    """The file cannot be read as a session at all (missing, not MCAP)."""


@dataclass
class RecordedObservation:
    capture_time: float
    frames: dict  # camera -> bytes exactly as sent (JPEG, or raw rgb8 when formats says so)
    state: np.ndarray  # (21,) float32, as sent
    task: str
    chunk: np.ndarray | None  # (16, 21) float32 as received (robot units), None when not recorded
    joint_names: tuple
    formats: dict = field(default_factory=dict)  # camera -> the CompressedImage format ("jpeg", "rgb8; raw WxH")


@dataclass
class Session:
    path: str
    observations: list
    commands: tuple  # (times (N,), joint names, positions (N, J))
    twists: tuple  # (times (M,), values (M, 6))
    measured_state: tuple  # (times (K,), values (K, 21)) in layout order, NaN where not yet measured
    statuses: list
    topics: dict
    warnings: list
    scheduled: list = field(default_factory=list)  # (first step's play time, (k, 21) kept steps)
    gate: list = field(default_factory=list)  # (time, {"level", "message", "kind", "limited"})
    complete: bool = True  # the file has its summary (ended cleanly)


def _stamp(header) -> float:
    return float(header.stamp.sec) + float(header.stamp.nanosec) * 1e-9


def _suffix(topic: str, n: int) -> tuple:
    return tuple(topic.strip("/").split("/")[-n:])


def decoded(bag, warnings: list, want=None):
    """(message, decoded ROS message, 'pkg/Type') for every message of a Bag that decodes (and that
    `want(message)` accepts, when given); the rest named in `warnings`."""
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory

    factory = DecoderFactory()
    decoders: dict = {}
    for message in bag.messages():
        schema = message.schema
        if schema is None or (want is not None and not want(message)):
            continue
        key = (schema.name, schema.encoding, schema.data)
        decoder = decoders.get(key)
        if decoder is None:
            try:
                # the factory caches by schema id, and ids restart in every file of a split bag: one id per definition
                decoder = factory.decoder_for(message.encoding, Schema(id=len(decoders) + 1, name=schema.name,
                                                                       encoding=schema.encoding, data=schema.data))
            except Exception as exc:  # noqa: BLE001 - a definition the decoder cannot compile
                warnings.append(f"{message.topic}: cannot decode {schema.name}: {exc}")
                decoder = None
            if decoder is None:
                warnings.append(f"{message.topic}: no decoder for {schema.name} ({message.encoding})")
            decoders[key] = decoder or False
        if decoder is False:
            continue
        try:
            msg = decoder(message.data)
        except Exception as exc:  # noqa: BLE001 - one bad message: say so, keep reading
            warnings.append(f"{message.topic}: undecodable {schema.name} message: {exc}")
            continue
        yield message, msg, schema.name.replace("/msg/", "/")


def open_session_bag(path):
    """The Bag at `path` (a session directory, a bag of another tool, a bare .mcap); SessionError if none."""
    from alfie_gr00t.bag.reader import BagError, open_bag

    try:
        return open_bag(path)
    except BagError as exc:
        raise SessionError(str(exc)) from exc


def read_session(path) -> Session:
    from alfie_gr00t.bag.reader import BagError

    path = os.fspath(path)
    bag = open_session_bag(path)
    warnings: list[str] = []
    topics: dict[str, int] = {}
    obs: dict[int, dict] = {}  # publish_time ns -> parts
    commands_t, commands_v, command_names = [], [], None
    twists_t, twists_v = [], []
    measured_t, measured_v = [], []
    statuses, scheduled, gate = [], [], []
    joint_names = tuple(layout.JOINT_NAMES)
    last = np.full(layout.ACTION_DIM, np.nan, dtype=np.float64)
    pending_measured = []  # (time, kind, payload) in file order

    try:
        items = list(decoded(bag, warnings))
    except BagError as exc:
        raise SessionError(str(exc)) from exc
    warnings[:0] = bag.warnings
    for message, msg, kind in items:
        topic = message.topic
        topics[topic] = topics.get(topic, 0) + 1
        when = message.publish_time
        log_s = message.log_time * 1e-9
        if _suffix(topic, 3)[:2] == ("debug", "image"):
            part = obs.setdefault(when, {})
            camera = _suffix(topic, 1)[0]
            part.setdefault("frames", {})[camera] = bytes(msg.data)
            part.setdefault("formats", {})[camera] = msg.format
        elif _suffix(topic, 2) == ("debug", "state"):
            part = obs.setdefault(when, {})
            part["state"] = np.asarray(msg.position, dtype=np.float32)
            part["joint_names"] = tuple(msg.name)
            if msg.name:
                joint_names = tuple(msg.name)
        elif _suffix(topic, 2) == ("debug", "task"):
            obs.setdefault(when, {})["task"] = msg.data
        elif _suffix(topic, 2) == ("debug", "chunk"):
            obs.setdefault(when, {})["chunk"] = np.asarray([p.positions for p in msg.points], dtype=np.float32)
        elif _suffix(topic, 2) == ("debug", "chunk_scheduled"):
            scheduled.append((_stamp(msg.header), np.asarray([p.positions for p in msg.points], dtype=np.float32)))
        elif _suffix(topic, 2) == ("debug", "gate"):
            values = {kv.key: kv.value for kv in msg.values}
            level = msg.level[0] if isinstance(msg.level, (bytes, bytearray)) else int(msg.level)
            gate.append((log_s, {"level": level, "message": msg.message, **values}))
        elif _suffix(topic, 1) == ("joint_commands",) and kind == "sensor_msgs/JointState":
            names = tuple(msg.name)
            if command_names is None:
                command_names = names
            order = [names.index(n) for n in command_names] if names != command_names else None
            positions = np.asarray(msg.position, dtype=np.float64)
            commands_t.append(_stamp(msg.header) or log_s)
            commands_v.append(positions if order is None else positions[order])
        elif _suffix(topic, 1) == ("cmd_vel",) and kind == "geometry_msgs/Twist":
            twists_t.append(log_s)
            twists_v.append([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])
        elif _suffix(topic, 1) == ("status",) and kind == "std_msgs/String":
            try:
                statuses.append(json.loads(msg.data))
            except ValueError:
                statuses.append({"raw": msg.data})
        elif kind == "sensor_msgs/JointState" and "debug" not in _suffix(topic, 2):
            pending_measured.append((_stamp(msg.header) or log_s, "joints", (tuple(msg.name), list(msg.position))))
        elif kind == "geometry_msgs/Twist":
            pending_measured.append((log_s, "base", [msg.linear.x, msg.linear.y, msg.linear.z,
                                                     msg.angular.x, msg.angular.y, msg.angular.z]))
        elif kind == "std_msgs/Float32MultiArray":
            pending_measured.append((log_s, "array", list(msg.data)))

    index = {n: i for i, n in enumerate(joint_names)}
    for t, what, payload in pending_measured:
        if what == "joints":
            for name, value in zip(*payload):
                if name in index:
                    last[index[name]] = value
        elif what == "base":
            last[:6] = payload
        elif len(payload) == len(last):
            last[:] = payload
        else:
            warnings.append(f"state array of {len(payload)} values (expected {len(last)}) skipped")
            continue
        measured_t.append(t)
        measured_v.append(last.copy())

    observations, incomplete = _pair(obs, joint_names)
    if incomplete:
        warnings.append(f"{incomplete} observation(s) without a state or frames were skipped")
    dim = len(command_names or ()) or 15
    return Session(
        path=path,
        observations=observations,
        commands=(np.asarray(commands_t, dtype=np.float64), tuple(command_names or ()),
                  np.asarray(commands_v, dtype=np.float64).reshape(-1, dim)),
        twists=(np.asarray(twists_t, dtype=np.float64), np.asarray(twists_v, dtype=np.float64).reshape(-1, 6)),
        measured_state=(np.asarray(measured_t, dtype=np.float64),
                        np.asarray(measured_v, dtype=np.float64).reshape(-1, layout.ACTION_DIM)),
        statuses=statuses, topics=topics, warnings=warnings, scheduled=scheduled, gate=gate,
        complete=bag.complete)


def _pair(obs: dict, joint_names: tuple) -> tuple[list, int]:
    """Merge the parts whose capture times are within 1 us (one observation), in capture order."""
    merged: list[tuple[int, dict]] = []
    for when in sorted(obs):
        if merged and when - merged[-1][0] <= 1000:
            for key, value in obs[when].items():
                if isinstance(value, dict):
                    merged[-1][1].setdefault(key, {}).update(value)
                else:
                    merged[-1][1][key] = value
        else:
            merged.append((when, {k: (dict(v) if isinstance(v, dict) else v) for k, v in obs[when].items()}))
    observations, incomplete, task = [], 0, ""
    for when, part in merged:
        task = part.get("task", task)
        if "state" not in part or not part.get("frames"):
            incomplete += 1
            continue
        observations.append(RecordedObservation(
            capture_time=when * 1e-9, frames=part["frames"], state=part["state"], task=task,
            chunk=part.get("chunk"), joint_names=part.get("joint_names") or joint_names,
            formats=part.get("formats", {})))
    return observations, incomplete
