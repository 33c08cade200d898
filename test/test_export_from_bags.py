"""groot_export_dataset --topic-map: datasets from bags we did not write.

The bags come from an independent writer: rosbags' rosbag2 Writer, every message serialized by rosbags'
own CDR serializer with its ROS 2 Jazzy types, laid out as a teleoperation demo recorded with
`ros2 bag record`: four cameras (CompressedImage JPEG, or raw Image), the robot's joint states and base
velocity, a teleop command topic and a task topic. They are exported through the documented example
topic map (config/topic_map.example.yaml) and read back with pyarrow and OpenCV; each row is checked
against the rule computed the slow way (the latest sample at or before each grid time)."""

from __future__ import annotations

import json
import os
import pathlib

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from alfie_gr00t import layout
from alfie_gr00t.tools import export_dataset as ex

rosbags = pytest.importorskip("rosbags", reason="rosbags (requirements.txt) writes the independent bags")
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "topic_map.example.yaml"
STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types
NAMES = layout.JOINT_NAMES
CAMS = layout.CAMERA_NAMES
W, H = 160, 120
T0 = 1_750_000_000.0
CAM_HZ, STATE_HZ, CMD_HZ = 30.0, 50.0, 100.0
EPS = 1e-6  # "at or before t" within 1 us (times since 1970 in float64 seconds are good to ~0.24 us)


def stamp(t):
    ns = int(round(t * 1e9))
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def header(t, frame=""):
    return T["std_msgs/msg/Header"](stamp=stamp(t), frame_id=frame)


def color(i, cam):
    return (17 * i) % 200 + 30, 40 + 50 * cam, (230 - 11 * i) % 200 + 30


def state_at(t):
    return np.array([np.sin(0.7 * t + d) for d in range(21)])


def command_at(t):
    return np.array([np.cos(1.3 * t + d) for d in range(21)])


def twist(v):
    vec = T["geometry_msgs/msg/Vector3"]
    return T["geometry_msgs/msg/Twist"](linear=vec(x=v[0], y=v[1], z=v[2]), angular=vec(x=v[3], y=v[4], z=v[5]))


def joint_state(t, values, names):
    return T["sensor_msgs/msg/JointState"](header=header(t), name=list(names), position=np.asarray(values, float),
                                           velocity=np.zeros(0), effort=np.zeros(0))


def camera_msg(t, i, cam, raw):
    image = np.empty((H, W, 3), np.uint8)
    image[:] = color(i, cam)
    if raw:
        rgb = image[:, :, ::-1].copy()
        return "sensor_msgs/msg/Image", T["sensor_msgs/msg/Image"](
            header=header(t, CAMS[cam]), height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
            data=rgb.reshape(-1))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return "sensor_msgs/msg/CompressedImage", T["sensor_msgs/msg/CompressedImage"](
        header=header(t, CAMS[cam]), format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))


def topic_map(**changes) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            doc.setdefault(section, {})[field] = value
        else:
            doc[section] = value
    return doc


def write_map(tmp_path, doc, name="map.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def teleop_bag(path, *, duration=2.0, raw=False, commands=True, drop_joints=(), camera_pause=None,
               markers=(), storage=StoragePlugin.MCAP, tasks=(("pick up the can", 0.0), ("place it", 1.0)),
               camera_delay_s=0.0, command_kind="joint_state"):
    """A teleop demo as `ros2 bag record` stores it (receive time = the message's time here; camera
    frames received up to `camera_delay_s` after their header stamp, in receive order)."""
    doc = topic_map()
    cams = {c: doc["cameras"][c] for c in CAMS}
    if raw:
        cams = {c: f"/alfie/cameras/{c}/image_raw" for c in CAMS}
    events = []
    for cam_i, cam in enumerate(CAMS):
        for i in range(int(duration * CAM_HZ) + 1):
            t = T0 + 0.004 * cam_i + i / CAM_HZ
            if camera_pause and camera_pause[0] <= t - T0 < camera_pause[1]:
                continue
            events.append((t, cams[cam], *camera_msg(t, i, cam_i, raw)))
    arm_names = [n for n in NAMES[6:] if n not in drop_joints]
    order = list(reversed(arm_names))  # by name, not by position
    for k in range(int(duration * STATE_HZ) + 1):
        t = T0 + 0.002 + k / STATE_HZ
        s = state_at(t)
        events.append((t, "/alfie/joint_states", "sensor_msgs/msg/JointState",
                       joint_state(t, [s[NAMES.index(n)] for n in order], order)))
        events.append((t + 1e-4, "/alfie/base_velocity", "geometry_msgs/msg/Twist", twist(s[:6])))
    if commands:
        for k in range(int(duration * CMD_HZ) + 1):
            t = T0 + 0.001 + k / CMD_HZ
            c = command_at(t)
            if command_kind == "joint_trajectory":  # one point: the target now
                point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=c[6:], velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                    time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0))
                events.append((t, "/alfie/teleop/joint_commands", "trajectory_msgs/msg/JointTrajectory",
                               T["trajectory_msgs/msg/JointTrajectory"](header=header(t), joint_names=list(NAMES[6:]),
                                                                         points=[point])))
            elif command_kind == "array":  # all 21 dims, the base included
                layout_msg = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
                events.append((t, "/alfie/teleop/joint_commands", "std_msgs/msg/Float32MultiArray",
                               T["std_msgs/msg/Float32MultiArray"](layout=layout_msg, data=np.float32(c))))
                continue
            else:
                events.append((t, "/alfie/teleop/joint_commands", "sensor_msgs/msg/JointState",
                               joint_state(t, c[6:], NAMES[6:])))
            events.append((t + 1e-4, "/alfie/teleop/cmd_vel", "geometry_msgs/msg/Twist", twist(c[:6])))
    for text, at in tasks:
        events.append((T0 + at, "/alfie/task", "std_msgs/msg/String", T["std_msgs/msg/String"](data=text)))
    for at, value in markers:
        events.append((T0 + at, "/alfie/teleop/episode", "std_msgs/msg/Bool", T["std_msgs/msg/Bool"](data=value)))
    rng = np.random.default_rng(7)
    received = [(t + (rng.uniform(0, camera_delay_s) if "cameras" in topic else 0.0), topic, msgtype, msg)
                for t, topic, msgtype, msg in events]
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {}
        for t, topic, msgtype, msg in sorted(received, key=lambda e: e[0]):
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(connections[topic], int(round(t * 1e9)), STORE.serialize_cdr(msg, msgtype))
    return path, events


def latest(events, topic, t):
    best = None
    for when, top, _, msg in events:
        if top == topic and when <= t + EPS:
            best = (when, msg)
    return best


def expected(events, fps, *, next_state=False):
    """Rows the slow way: the span where every input is live, then latest-at-or-before per input."""
    topics = ["/alfie/joint_states", "/alfie/base_velocity"] + sorted({e[1] for e in events if "cameras" in e[1]})
    if not next_state:
        topics += ["/alfie/teleop/joint_commands", "/alfie/teleop/cmd_vel"]
    firsts = [min(e[0] for e in events if e[1] == top) for top in topics if "cmd_vel" not in top and "base_vel" not in top]
    lasts = [max(e[0] for e in events if e[1] == top) for top in topics if "cmd_vel" not in top and "base_vel" not in top]
    t0, t1 = max(firsts), min(lasts)
    grid = t0 + np.arange(int(np.floor((t1 - t0) * fps + 1e-9)) + 1) / fps
    rows = []
    for t in grid:
        state = np.full(21, np.nan)
        js, tw = latest(events, "/alfie/joint_states", t), latest(events, "/alfie/base_velocity", t)
        if js:
            for name, value in zip(js[1].name, js[1].position):
                state[NAMES.index(name)] = value
        if tw:
            l, a = tw[1].linear, tw[1].angular
            state[:6] = [l.x, l.y, l.z, a.x, a.y, a.z]
        action = np.full(21, np.nan)
        if not next_state:
            cmd, cv = latest(events, "/alfie/teleop/joint_commands", t), latest(events, "/alfie/teleop/cmd_vel", t)
            if cmd and hasattr(cmd[1], "points"):
                action[6:] = cmd[1].points[0].positions
            elif cmd and hasattr(cmd[1], "data"):
                action[:] = cmd[1].data
                cv = None
            elif cmd:
                action[6:] = cmd[1].position
            if cv:
                l, a = cv[1].linear, cv[1].angular
                action[:6] = [l.x, l.y, l.z, a.x, a.y, a.z]
        task = latest(events, "/alfie/task", t)
        rows.append([t, state, action, task[1].data if task else None])
    if next_state:
        for k in range(len(rows) - 1):
            rows[k][2] = rows[k + 1][1]
        rows = rows[:-1]
    return [r for r in rows if np.isfinite(r[1]).all() and np.isfinite(r[2]).all() and r[3] is not None]


def read_rows(out, episode=0):
    info = json.loads((out / "meta" / "info.json").read_text())
    data = pq.read_table(out / info["data_path"].format(episode_chunk=0, episode_index=episode)).to_pydict()
    return info, data


def video(out, info, cam, episode=0):
    capture = cv2.VideoCapture(str(out / info["video_path"].format(
        episode_chunk=0, video_key=f"observation.images.{cam}", episode_index=episode)))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def nearest_frame(frame, around, cam_i):
    """Which camera frame (by index, among its neighbours) the video frame shows: the nearest colour
    (the MPEG-4 video shifts a flat colour by a few levels; neighbours differ by 11 to 34)."""
    mean = frame.reshape(-1, 3).mean(axis=0)
    candidates = range(max(0, around - 4), around + 5)
    return min(candidates, key=lambda i: np.abs(mean - color(i, cam_i)).sum())


def frame_index_at(t, cam_i):
    return int(np.floor((t + EPS - T0 - 0.004 * cam_i) * CAM_HZ))


@pytest.mark.parametrize("raw", [False, True], ids=["compressed", "raw_image"])
def test_a_teleop_bag_becomes_the_dataset_the_rule_says(tmp_path, capsys, raw):
    bag, events = teleop_bag(tmp_path / "demo", raw=raw)
    doc = topic_map()
    if raw:
        doc["cameras"] = {c: f"/alfie/cameras/{c}/image_raw" for c in CAMS}
    tmap = write_map(tmp_path, doc) if raw else EXAMPLE
    out = tmp_path / "ds"
    assert ex.main([str(bag), str(out), "--topic-map", str(tmap)]) == 0, capsys.readouterr().err
    assert "1 episode(s)" in capsys.readouterr().out
    rows = expected(events, 15.0)
    info, data = read_rows(out)
    assert info["total_frames"] == len(rows) > 20 and info["codebase_version"] == "v2.1"
    state, action = np.array(data["observation.state"]), np.array(data["action"])
    for k, (t, want_state, want_action, _) in enumerate(rows):
        np.testing.assert_array_equal(state[k], np.float32(want_state))
        np.testing.assert_array_equal(action[k], np.float32(want_action))
    tasks = [json.loads(line)["task"] for line in (out / "meta" / "tasks.jsonl").read_text().splitlines()]
    assert tasks == ["pick up the can", "place it"]
    assert [tasks[i] for i in data["task_index"]] == [r[3] for r in rows]
    for cam_i, cam in enumerate(CAMS):
        frames = video(out, info, cam)
        assert len(frames) == len(rows) and frames[0].shape == (H, W, 3)
        shown = [nearest_frame(frame, frame_index_at(t, cam_i), cam_i) for (t, *_), frame in zip(rows, frames)]
        assert shown == [frame_index_at(t, cam_i) for t, *_ in rows], cam
    modality = json.loads((out / "meta" / "modality.json").read_text())
    assert list(modality["video"]) == list(CAMS)


def test_next_state_as_action_markers_and_sqlite3_storage(tmp_path, capsys):
    """A demo recorded without commands (the next state is the action), cut into two episodes by a Bool
    marker, in rosbag2's sqlite3 storage; --task gives the instruction."""
    bag, events = teleop_bag(tmp_path / "demo", duration=3.0, commands=False, storage=StoragePlugin.SQLITE3,
                             markers=((0.2, True), (1.2, False), (1.6, True), (2.7, False)))
    assert any(n.endswith(".db3") for n in os.listdir(bag))
    doc = topic_map(action={"source": "next_state"}, episodes={"split": "marker", "marker": "/alfie/teleop/episode"})
    out = tmp_path / "ds"
    assert ex.main([str(bag), str(out), "--topic-map", str(write_map(tmp_path, doc)), "--task", "wave"]) == 0, \
        capsys.readouterr().err
    info, _ = read_rows(out)
    assert info["total_episodes"] == 2
    for e, (a, b) in enumerate(((0.2, 1.2), (1.6, 2.7))):
        _, data = read_rows(out, e)
        state, action = np.array(data["observation.state"]), np.array(data["action"])
        np.testing.assert_array_equal(action[:-1], state[1:])  # the next state is the action
        n = len(state)
        assert abs(n / 15.0 - (b - a)) < 3 / 15.0, (n, a, b)
        t = T0 + a + 1 / 15.0
        np.testing.assert_allclose(state[1], state_at(t), atol=0.7 / STATE_HZ + 1e-6)
    assert [json.loads(x)["task"] for x in (out / "meta" / "tasks.jsonl").read_text().splitlines()] == ["wave"]


def test_the_export_of_a_bag_is_deterministic(tmp_path):
    bag, _ = teleop_bag(tmp_path / "demo", duration=1.0)
    for name in ("one", "two"):
        assert ex.main([str(bag), str(tmp_path / name), "--topic-map", str(EXAMPLE)]) == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 8 + len(CAMS)
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


@pytest.mark.parametrize("make, change, message", [
    (dict(drop_joints=("head_yaw", "head_roll")), {}, "no state ever sets ['head_yaw', 'head_roll']"),
    ({}, {"cameras": {**{c: f"/alfie/cameras/{c}/image_raw/compressed" for c in CAMS[:3]},
                      "right_center": "/alfie/cameras/missing"}}, "the bag does not have"),
    (dict(camera_pause=(0.6, 1.9)), {}, "gap of 1.3"),
    ({}, {"cameras": {**{c: f"/alfie/cameras/{c}/image_raw/compressed" for c in CAMS[:3]}, "right_center": "/alfie/task"}},
     "/alfie/task (camera right_center) is std_msgs/String"),
    (dict(commands=False), {}, "have: /alfie/base_velocity"),
])
def test_a_bag_that_cannot_be_an_episode_is_refused_with_the_reason(tmp_path, capsys, make, change, message):
    bag, _ = teleop_bag(tmp_path / "demo", duration=2.5, **make)
    tmap = write_map(tmp_path, topic_map(**change))
    out = tmp_path / "ds"
    assert ex.main([str(bag), str(out), "--topic-map", str(tmap)]) == 2
    err = capsys.readouterr().err
    assert message.replace("have: ", "") in err, err
    assert not out.exists(), "nothing written for a refused input"


def test_a_bad_topic_map_and_a_full_output_are_refused(tmp_path, capsys):
    bag, _ = teleop_bag(tmp_path / "demo", duration=0.5)
    bad = write_map(tmp_path, topic_map(action={"source": "telepathy", "topic": "/x"}), "bad.yaml")
    assert ex.main([str(bag), str(tmp_path / "ds"), "--topic-map", str(bad)]) == 2
    assert "action.source must be one of" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    assert ex.main([str(bag), str(tmp_path / "full"), "--topic-map", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    assert ex.main([str(bag), str(tmp_path / "full"), "--topic-map", str(EXAMPLE), "--force"]) == 0
    assert not (tmp_path / "full" / "mine.txt").exists() and (tmp_path / "full" / "meta" / "info.json").exists()


def test_a_teleop_bag_without_a_topic_map_is_refused_with_the_option_named(tmp_path, capsys):
    bag, _ = teleop_bag(tmp_path / "demo", duration=0.5)
    assert ex.main([str(bag), str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert "not a groot_client session" in err and "--topic-map" in err, err


def test_header_time_follows_the_stamps_when_frames_arrive_late_and_out_of_order(tmp_path):
    """Frames received up to 80 ms after their stamp (two or three frames late, so out of order on
    their topic): with `time: header` the frame shown at t is the one stamped last at or before t."""
    bag, events = teleop_bag(tmp_path / "demo", duration=1.5, camera_delay_s=0.08)
    out = tmp_path / "ds"
    assert ex.main([str(bag), str(out), "--topic-map", str(write_map(tmp_path, topic_map(time="header")))]) == 0
    rows = expected(events, 15.0)
    info, data = read_rows(out)
    assert info["total_frames"] == len(rows)
    np.testing.assert_array_equal(np.array(data["observation.state"])[:, 6:], np.float32([r[1][6:] for r in rows]))
    for cam_i, cam in enumerate(CAMS):
        frames = video(out, info, cam)
        shown = [nearest_frame(frame, frame_index_at(t, cam_i), cam_i) for (t, *_), frame in zip(rows, frames)]
        assert shown == [frame_index_at(t, cam_i) for t, *_ in rows], cam


@pytest.mark.parametrize("kind", ["joint_trajectory", "array"])
def test_a_trajectory_or_array_command_topic_is_the_action(tmp_path, kind):
    bag, events = teleop_bag(tmp_path / "demo", duration=1.0, command_kind=kind)
    action = {"source": kind, "topic": "/alfie/teleop/joint_commands"}
    if kind == "joint_trajectory":
        action["base"] = "/alfie/teleop/cmd_vel"
    out = tmp_path / "ds"
    assert ex.main([str(bag), str(out), "--topic-map", str(write_map(tmp_path, topic_map(action=action)))]) == 0
    rows = expected(events, 15.0)
    info, data = read_rows(out)
    assert info["total_frames"] == len(rows) > 10
    np.testing.assert_array_equal(np.array(data["action"]), np.float32([r[2] for r in rows]))
