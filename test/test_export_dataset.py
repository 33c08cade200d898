"""groot_export_dataset: recorded sessions -> a LeRobot v2.1 dataset Isaac-GR00T fine-tunes from.

No LeRobot or Isaac-GR00T install exists here, so the dataset is read back with pyarrow, OpenCV and json
and checked against the formats' documented fields:
- LeRobot v2.1 (huggingface/lerobot, lerobot/common/datasets/utils.py and compute_stats.py of the v2.1
  codebase): meta/info.json (codebase_version, fps, features with dtype/shape/names and video "info",
  data_path/video_path templates, total_episodes/frames/tasks/videos/chunks, chunks_size, splits),
  meta/episodes.jsonl {episode_index, tasks, length}, meta/tasks.jsonl {task_index, task},
  meta/episodes_stats.jsonl {episode_index, stats: {feature: min/max/mean/std/count}}, images (3,1,1) in [0,1];
  default columns timestamp float32, frame_index/episode_index/index/task_index int64.
- Isaac-GR00T (getting_started/data_preparation.md; gr00t/data/dataset/lerobot_episode_loader.py and
  gr00t/data/stats.py of N1.6): meta/modality.json state/action {start, end} slices, video original_key
  observation.images.<camera>, annotation human.task_description read from the column
  annotation.human.task_description (task indices into tasks.jsonl); meta/stats.json
  {feature: mean/std/min/max/q01/q99} for the float features; one video frame per parquet row.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alfie_gr00t import layout
from alfie_gr00t.tools import export_dataset as ex
from alfie_gr00t.tools.session import RecordedObservation, Session

NAMES = layout.JOINT_NAMES
CAMS = layout.CAMERA_NAMES
W, H = layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT


def color(obs: int, cam: int) -> tuple[int, int, int]:
    """A distinct flat BGR colour per (observation, camera): survives JPEG and MPEG-4 within a few levels."""
    return (20 + 37 * obs) % 200 + 30, 40 + 50 * cam, (200 - 23 * obs) % 180 + 40


def jpeg(obs: int, cam: int) -> bytes:
    image = np.empty((H, W, 3), np.uint8)
    image[:] = color(obs, cam)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def state_at(t):
    return np.array([np.sin(t + d) for d in range(21)], dtype=np.float64)


def command_at(t):
    return np.array([np.cos(2 * t + d) for d in range(15)], dtype=np.float64)


def twist_at(t):
    return np.array([0.01 * (d + 1) * t for d in range(6)], dtype=np.float64)


def make_session(path="s.mcap", *, t0=100.0, obs_hz=5.0, duration=2.0, cmd_start=0.05, tasks=("pick the can",
                 "place the can"), state_start=0.0, twists=True):
    """A session as tools/session.py reads it: observations at obs_hz, commands and twists at 100 Hz
    from t0+cmd_start, measured state at 50 Hz from t0+state_start; the task switches half way."""
    n_obs = int(duration * obs_hz) + 1
    observations = []
    for i in range(n_obs):
        t = t0 + i / obs_hz
        task = tasks[0] if i < n_obs // 2 else tasks[-1]
        observations.append(RecordedObservation(
            capture_time=t, frames={c: jpeg(i, k) for k, c in enumerate(CAMS)},
            state=state_at(t).astype(np.float32), task=task, chunk=None, joint_names=NAMES))
    cmd_t = t0 + cmd_start + np.arange(int((duration - cmd_start) * 100) + 1) / 100.0
    st_t = t0 + state_start + np.arange(int((duration - state_start) * 50) + 1) / 50.0
    empty = (np.zeros(0), np.zeros((0, 6)))
    return Session(
        path=path, observations=observations,
        commands=(cmd_t, NAMES[6:], np.stack([command_at(t) for t in cmd_t])),
        twists=(cmd_t, np.stack([twist_at(t) for t in cmd_t])) if twists else empty,
        measured_state=(st_t, np.stack([state_at(t) for t in st_t])),
        statuses=[], topics={}, warnings=[])


def latest(times, t):
    """Brute force: the index of the sample recorded last among those whose time is <= t (within the
    exporter's 1 us: seconds since 1970 in float64 are good to ~0.24 us, a sample stamped at a grid time
    counts as at it)."""
    best = None
    for i, ti in enumerate(times):
        if ti <= t + ex.TIME_EPS_S:
            best = i
    return best


def expected_rows(session, fps):
    """What the export must hold, computed the slow, obvious way."""
    cmd_t, _, cmd_p = session.commands
    tw_t, tw_v = session.twists
    st_t, st_v = session.measured_state
    obs_t = [o.capture_time for o in session.observations]
    rows = []
    k = 0
    while cmd_t[0] + k / fps <= cmd_t[-1] + 1e-9:
        t = cmd_t[0] + k / fps
        k += 1
        i_s, i_c, i_o = latest(st_t, t), latest(cmd_t, t), latest(obs_t, t)
        i_w = latest(tw_t, t) if len(tw_t) else None
        if None in (i_s, i_c, i_o) or (len(tw_t) and i_w is None):
            continue
        action = np.concatenate([tw_v[i_w] if len(tw_t) else np.zeros(6), cmd_p[i_c]])
        rows.append((t, st_v[i_s], action, i_o, session.observations[i_o].task))
    return rows


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames = []
    for _ in range(100_000):
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return frames, size


def jsonl(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def test_latest_at_or_before_holds_the_last_finite_sample_per_dimension():
    times = np.array([0.0, 1.0, 2.0])
    values = np.array([[1.0, np.nan], [2.0, 5.0], [np.nan, 6.0]])
    got, ok = ex.latest_at_or_before(times, values, [-0.5, 0.0, 0.5, 1.0, 2.5])
    assert ok.tolist() == [[False, False], [True, False], [True, False], [True, True], [True, True]]
    assert got[1:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]  # NaN at t=2 does not replace the held 2.0
    assert got[3:, 1].tolist() == [5.0, 6.0]


def test_latest_is_the_sample_recorded_last_when_stamps_tie_out_of_order():
    """Two rows of one instant, the second (fresher, forward-filled) stamped 1 ulp earlier: it wins."""
    t = 1000.06
    times = np.array([999.0, np.nextafter(t, np.inf), t, 1000.08])
    values = np.array([[0.0], [1.0], [2.0], [3.0]])
    got, _ = ex.latest_at_or_before(times, values, [t, 1000.07, 1000.09])
    assert got[:, 0].tolist() == [2.0, 2.0, 3.0]
    assert [values[latest(times, g), 0] for g in (t, 1000.07, 1000.09)] == got[:, 0].tolist()


def test_resample_follows_the_rule_on_the_commanding_span():
    session = make_session(state_start=0.3)
    fps = 15.0
    episode = ex.resample(session, fps)
    rows = expected_rows(session, fps)
    assert len(episode) == len(rows) > 20
    assert episode.warnings and "dropped the first" in episode.warnings[0]  # state starts 0.25 s after commands
    np.testing.assert_allclose(episode.times, [r[0] for r in rows], atol=1e-9)
    np.testing.assert_array_equal(episode.state, np.stack([r[1] for r in rows]).astype(np.float32))
    np.testing.assert_array_equal(episode.action, np.stack([r[2] for r in rows]).astype(np.float32))
    for cam in CAMS:
        assert episode.frame_of[cam].tolist() == [r[3] for r in rows]
    assert episode.tasks == [r[4] for r in rows]
    assert episode.times[-1] <= session.commands[0][-1] and episode.times[0] >= session.commands[0][0]


def test_export_reads_back_as_a_lerobot_v21_dataset(tmp_path):
    fps = 15.0
    sessions = [make_session("a.mcap"), make_session("b.mcap", t0=500.0, duration=1.5, tasks=("wave",))]
    out = tmp_path / "ds"
    info = ex.export_sessions(sessions, out, fps=fps, log=lambda *_: None)
    expected = [expected_rows(s, fps) for s in sessions]
    lengths = [len(e) for e in expected]

    meta = json.loads((out / "meta" / "info.json").read_text())
    assert meta == info
    assert meta["codebase_version"] == "v2.1" and meta["fps"] == 15
    assert (meta["total_episodes"], meta["total_frames"], meta["total_videos"]) == (2, sum(lengths), 2 * len(CAMS))
    assert (meta["total_tasks"], meta["total_chunks"], meta["chunks_size"]) == (3, 1, 1000)
    assert meta["splits"] == {"train": "0:2"}
    assert meta["features"]["observation.state"] == {"dtype": "float32", "shape": [21], "names": list(NAMES)}
    assert meta["features"]["action"]["names"] == list(NAMES)
    for key in ("frame_index", "episode_index", "index", "task_index", ex.TASK_ANNOTATION):
        assert meta["features"][key]["dtype"] == "int64"
    assert meta["features"]["timestamp"]["dtype"] == "float32"

    tasks = jsonl(out / "meta" / "tasks.jsonl")
    assert tasks == [{"task_index": 0, "task": "pick the can"}, {"task_index": 1, "task": "place the can"},
                     {"task_index": 2, "task": "wave"}]
    assert jsonl(out / "meta" / "episodes.jsonl") == [
        {"episode_index": 0, "tasks": ["pick the can", "place the can"], "length": lengths[0]},
        {"episode_index": 1, "tasks": ["wave"], "length": lengths[1]}]

    modality = json.loads((out / "meta" / "modality.json").read_text())
    for part in ("state", "action"):
        spans = sorted((v["start"], v["end"]) for v in modality[part].values())
        assert spans[0][0] == 0 and spans[-1][1] == 21
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no gap, no overlap
        assert modality[part]["left_arm"] == {"start": 6, "end": 12}
    assert modality["video"] == {c: {"original_key": f"observation.images.{c}"} for c in CAMS}
    assert modality["annotation"] == {"human.task_description": {}}

    index = 0
    task_ids = {t["task"]: t["task_index"] for t in tasks}
    for e, rows in enumerate(expected):
        table = pq.read_table(out / meta["data_path"].format(episode_chunk=0, episode_index=e))
        assert table.column_names == ["observation.state", "action", "timestamp", "frame_index", "episode_index",
                                      "index", "task_index", ex.TASK_ANNOTATION]
        data = table.to_pydict()
        n = len(rows)
        assert table.num_rows == n
        assert data["frame_index"] == list(range(n))
        assert data["episode_index"] == [e] * n
        assert data["index"] == list(range(index, index + n))  # global and continuous across episodes
        index += n
        np.testing.assert_array_equal(np.float32(data["timestamp"]), (np.arange(n) / fps).astype(np.float32))
        np.testing.assert_array_equal(np.array(data["observation.state"], np.float32),
                                      np.stack([r[1] for r in rows]).astype(np.float32))
        np.testing.assert_array_equal(np.array(data["action"], np.float32),
                                      np.stack([r[2] for r in rows]).astype(np.float32))
        assert data["task_index"] == data[ex.TASK_ANNOTATION] == [task_ids[r[4]] for r in rows]
        for key in ("observation.state", "action"):
            kind = table.schema.field(key).type
            assert pa.types.is_fixed_size_list(kind) and kind.list_size == 21 and kind.value_type == pa.float32()
        for k, cam in enumerate(CAMS):
            key = f"observation.images.{cam}"
            assert meta["features"][key]["shape"] == [H, W, 3]
            assert meta["features"][key]["info"]["video.codec"] == "mpeg4"
            video = out / meta["video_path"].format(episode_chunk=0, video_key=key, episode_index=e)
            frames, size = read_video(video)
            assert size == (W, H) and len(frames) == n  # one video frame per parquet row
            for row, frame in zip(rows, frames):  # the frame sent with the latest observation, held
                assert np.abs(frame.reshape(-1, 3).mean(axis=0) - color(row[3], k)).max() < 6

    episode_stats = jsonl(out / "meta" / "episodes_stats.jsonl")
    assert [s["episode_index"] for s in episode_stats] == [0, 1]
    first = episode_stats[0]["stats"]
    assert first["observation.state"]["count"] == [lengths[0]]
    np.testing.assert_allclose(first["action"]["max"], np.stack([r[2] for r in expected[0]]).max(axis=0), rtol=1e-6)
    image = first[f"observation.images.{CAMS[0]}"]
    assert np.array(image["mean"]).shape == (3, 1, 1) and 0.0 <= np.min(image["min"]) <= np.max(image["max"]) <= 1.0

    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert set(stats) == {k for k, v in meta["features"].items() if "float" in v["dtype"]}
    for key in ("observation.state", "action"):
        assert set(stats[key]) == {"mean", "std", "min", "max", "q01", "q99"} and len(stats[key]["q99"]) == 21
    all_state = np.concatenate([np.stack([r[1] for r in rows]) for rows in expected]).astype(np.float32)
    np.testing.assert_allclose(stats["observation.state"]["mean"], all_state.mean(axis=0), rtol=1e-5, atol=1e-6)

    config = (out / ex.MODALITY_CONFIG_FILE).read_text()
    tree = ast.parse(config)
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "register_modality_config" in calls and "annotation.human.task_description" in config
    assert all(g.name in config for g in layout.LAYOUT_GROUPS) and all(c in config for c in CAMS)


def test_export_is_deterministic(tmp_path):
    for name in ("one", "two"):
        ex.export_sessions([make_session()], tmp_path / name, log=lambda *_: None)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 8 + len(CAMS)  # 6 meta, 1 parquet, 1 modality config, the videos
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_fps_changes_the_grid(tmp_path):
    info = ex.export_sessions([make_session()], tmp_path / "ds", fps=30.0, log=lambda *_: None)
    assert info["total_frames"] == len(expected_rows(make_session(), 30.0))
    assert info["fps"] == 30
    frames, _ = read_video(tmp_path / "ds" / info["video_path"].format(
        episode_chunk=0, video_key=f"observation.images.{CAMS[0]}", episode_index=0))
    assert len(frames) == info["total_frames"]


def test_without_cmd_vel_the_base_action_is_zero_and_said():
    episode = ex.resample(make_session(twists=False), 15.0)
    assert np.all(episode.action[:, :6] == 0.0)
    assert any("cmd_vel" in w for w in episode.warnings)


def test_raw_frames_are_decoded_as_rgb_of_the_size_their_format_names(tmp_path):
    session = make_session(duration=0.6)
    for i, obs in enumerate(session.observations):
        for k, cam in enumerate(CAMS):
            rgb = np.empty((140, 160, 3), np.uint8)
            rgb[:] = color(i, k)[::-1]  # raw frames are sent RGB
            obs.frames[cam] = rgb.tobytes()
            obs.formats[cam] = "rgb8; raw 160x140"
    info = ex.export_sessions([session], tmp_path / "ds", log=lambda *_: None)
    assert info["features"][f"observation.images.{CAMS[1]}"]["shape"] == [140, 160, 3]
    frames, size = read_video(tmp_path / "ds" / info["video_path"].format(
        episode_chunk=0, video_key=f"observation.images.{CAMS[1]}", episode_index=0))
    rows = expected_rows(session, 15.0)
    assert size == (160, 140) and len(frames) == len(rows)
    assert np.abs(frames[0].reshape(-1, 3).mean(axis=0) - color(rows[0][3], 1)).max() < 6
    with pytest.raises(ex.ExportError, match="neither JPEG nor raw RGB 320x280"):
        ex.decode_frame(b"\x00" * 99, (W, H), "rgb8")


@pytest.mark.parametrize("break_it, message", [
    (lambda s: setattr(s, "commands", (np.zeros(0), NAMES[6:], np.zeros((0, 15)))), "no ~/joint_commands"),
    (lambda s: setattr(s, "commands", (s.commands[0], ("elbow", *NAMES[7:]), s.commands[2])), "not in the layout"),
    (lambda s: setattr(s, "observations", []), "no observation with frames"),
    (lambda s: setattr(s, "measured_state", (np.zeros(0), np.zeros((0, 21)))), "no measured state"),
    (lambda s: setattr(s, "measured_state", (s.measured_state[0], s.measured_state[1][:, :20])), "20 dims"),
    (lambda s: s.observations.__setitem__(slice(None), [o for o in s.observations if o.capture_time > 1e9]),
     "no observation"),
])
def test_a_session_that_cannot_be_an_episode_is_refused_with_the_reason(break_it, message):
    session = make_session()
    break_it(session)
    with pytest.raises(ex.ExportError, match=message):
        ex.resample(session, 15.0)


def test_export_refuses_a_non_empty_output_and_bad_options(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(ex.ExportError, match="not empty"):
        ex.export_sessions([make_session()], tmp_path / "ds", log=lambda *_: None)
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"
    with pytest.raises(ex.ExportError, match="fourcc"):
        ex.export_sessions([make_session()], tmp_path / "new", fourcc="xvid", log=lambda *_: None)
    with pytest.raises(ex.ExportError, match="fps"):
        ex.resample(make_session(), 0.0)


def _record_session(recorder, now, name, *, t0, duration, tasks):
    """Drive SessionRecorder the way groot_client does (docs/recording.md), on a simulated clock:
    state inputs at 50 Hz, observations (frames, state, task, chunk) at 5 Hz stamped with their capture
    time, then 100 Hz joint commands and twists, and the 1 Hz status. Returns the file's path."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import CompressedImage, JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    def stamp(header, t):
        ns = int(round(t * 1e9))
        header.stamp.sec, header.stamp.nanosec = ns // 10**9, ns % 10**9
        return ns

    def twist(v):
        msg = Twist()
        (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z) = map(float, v)
        return msg

    node = "/alfie/groot_client"
    events = []  # (time, order, fn)
    for k in range(int(duration * 50) + 6):  # from 0.1 s before the first command
        t = t0 - 0.1 + k / 50.0
        events.append((t, 0, lambda t=t: ("/alfie/base_velocity", twist(state_at(t)[:6]), None)))

        def joints(t=t):
            msg = JointState(name=list(NAMES[6:]), position=[float(v) for v in state_at(t)[6:]])
            stamp(msg.header, t)
            return "/alfie/joint_states", msg, None
        events.append((t, 1, joints))
    n_obs = int(duration * 5) + 1
    for i in range(n_obs):
        t = t0 - 0.05 + i / 5.0
        task = tasks[0] if i < n_obs // 2 else tasks[-1]

        def observation(t=t, i=i, task=task):
            out = []
            for k, cam in enumerate(CAMS):
                msg = CompressedImage(format="jpeg", data=jpeg(i, k))
                msg.header.frame_id = cam
                ns = stamp(msg.header, t)
                out.append((f"{node}/debug/image/{cam}", msg, ns))
            state = JointState(name=list(NAMES), position=[float(v) for v in state_at(t)])
            stamp(state.header, t)
            chunk = JointTrajectory(joint_names=list(NAMES), points=[JointTrajectoryPoint(
                positions=[float(v) for v in state_at(t)], time_from_start=Duration(sec=0, nanosec=int(s / 15 * 1e9)))
                for s in range(16)])
            stamp(chunk.header, t)
            return out + [(f"{node}/debug/state", state, ns), (f"{node}/debug/task", String(data=task), ns),
                          (f"{node}/debug/chunk", chunk, ns)]
        events.append((t, 2, observation))
    for k in range(int(duration * 100) + 1):
        t = t0 + k / 100.0

        def command(t=t):
            msg = JointState(name=list(NAMES[6:]), position=[float(v) for v in command_at(t)])
            stamp(msg.header, t)
            return [(f"{node}/joint_commands", msg, None), (f"{node}/cmd_vel", twist(twist_at(t)), None)]
        events.append((t, 3, command))
    for k in range(int(duration) + 1):
        events.append((t0 + k, 4, lambda: (f"{node}/status", String(data=json.dumps({"state": "ACTIVE"})), None)))

    path = recorder.start_session(name)
    for t, _, make in sorted(events, key=lambda e: (e[0], e[1])):
        now[0] = int(round(t * 1e9))
        made = make()
        for topic, msg, publish in (made if isinstance(made, list) else [made]):
            assert recorder.record(topic, msg, now[0] if publish is None else publish)
    recorder.end_session()
    return path


@pytest.mark.skipif(os.environ.get("ALFIE_ROS_FREE", "") == "1",
                    reason="ROS-free run (ALFIE_ROS_FREE=1): recording needs rclpy's CDR serializer")
def test_recorded_sessions_export_end_to_end(tmp_path, capsys):
    """SessionRecorder -> MCAP -> read_session -> groot_export_dataset (the CLI) -> the dataset read back."""
    from alfie_gr00t.nodes.recorder import SessionRecorder
    from alfie_gr00t.tools.session import read_session

    now = [0]
    recorder = SessionRecorder(str(tmp_path / "rec"), max_bytes=1 << 30, max_files=0, queue_size=100_000,
                               clock_ns=lambda: now[0])
    try:
        paths = [_record_session(recorder, now, "first", t0=1000.0, duration=2.0, tasks=("pick", "place")),
                 _record_session(recorder, now, "second", t0=2000.0, duration=1.0, tasks=("wave",))]
        assert recorder.stats()["dropped"] == 0
    finally:
        recorder.close()
    out = tmp_path / "dataset"
    assert ex.main([*paths, str(out)]) == 0
    assert "2 episode(s)" in capsys.readouterr().out

    sessions = [read_session(p) for p in paths]
    for session, t0 in zip(sessions, (1000.0, 2000.0)):  # what was recorded is what the reader gives
        cmd_t, names, positions = session.commands
        assert names == NAMES[6:] and abs(cmd_t[0] - t0) < 1e-6
        np.testing.assert_allclose(positions[7], command_at(cmd_t[7]), atol=1e-9)
    expected = [expected_rows(s, 15.0) for s in sessions]
    assert all(len(e) > 10 for e in expected)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, sum(map(len, expected)), 3)
    index = 0
    for e, rows in enumerate(expected):
        data = pq.read_table(out / info["data_path"].format(episode_chunk=0, episode_index=e)).to_pydict()
        n = len(rows)
        assert data["index"] == list(range(index, index + n))
        index += n
        np.testing.assert_array_equal(np.float32(data["timestamp"]), (np.arange(n) / 15.0).astype(np.float32))
        state = np.array(data["observation.state"])
        action = np.array(data["action"])
        for k, (t, want_state, want_action, i_obs, task) in enumerate(rows):
            np.testing.assert_array_equal(state[k], np.float32(want_state))
            np.testing.assert_array_equal(action[k], np.float32(want_action))
            # and those are the robot's values: measured at most one 50 Hz period, commanded one 100 Hz tick ago
            np.testing.assert_allclose(state[k], state_at(t), atol=0.021 + 1e-6)
            np.testing.assert_allclose(action[k, 6:], command_at(t), atol=0.021 + 1e-6)
        for c, cam in enumerate(CAMS):
            frames, size = read_video(out / info["video_path"].format(
                episode_chunk=0, video_key=f"observation.images.{cam}", episode_index=e))
            assert size == (W, H) and len(frames) == n
            for row, frame in zip(rows, frames):
                assert np.abs(frame.reshape(-1, 3).mean(axis=0) - color(row[3], c)).max() < 6
    tasks = [t["task"] for t in jsonl(out / "meta" / "tasks.jsonl")]
    assert tasks == ["pick", "place", "wave"]
    assert [e["length"] for e in jsonl(out / "meta" / "episodes.jsonl")] == [len(e) for e in expected]
    assert ex.main([paths[0], str(out)]) == 2  # the output exists: refused, not overwritten
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    # the session's bare storage file exports as its directory does
    bare = os.path.join(paths[1], f"{os.path.basename(paths[1])}_0.mcap")
    assert ex.main([bare, str(tmp_path / "bare")]) == 0
    one = pq.read_table(tmp_path / "bare" / info["data_path"].format(episode_chunk=0, episode_index=0)).to_pydict()
    two = pq.read_table(out / info["data_path"].format(episode_chunk=0, episode_index=1)).to_pydict()
    assert one["observation.state"] == two["observation.state"] and one["action"] == two["action"]
