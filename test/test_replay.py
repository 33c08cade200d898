"""read_session (tools/session.py) and groot_replay (tools/replay.py): a session recorded by hand with
SessionRecorder, messages built as the issue-21 contract describes, replayed over real ZeroMQ against real
PolicyService servers (BackgroundServer) running the mock engine."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from alfie_gr00t import layout
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.nodes.recorder import SessionRecorder
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import BackgroundServer, PolicyService
from alfie_gr00t.tools import replay
from alfie_gr00t.tools.session import SessionError, read_session
from alfie_gr00t.wire import images
from alfie_gr00t.wire.observation import ObservationBatch
from support.frames import hold_chunk, make_frame

NS = "/alfie/groot_client"
N_OBS = 6
STEP_HZ = 15.0
ARM_JOINTS = layout.JOINT_NAMES[6:]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def state_of(k: int) -> np.ndarray:
    lo, hi = layout.default_limits()
    return (lo + (hi - lo) * (0.2 + 0.1 * k + 0.03 * np.arange(layout.ACTION_DIM) % 0.6)).astype(np.float32)


def trajectory(ns: int, steps: np.ndarray) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(layout.JOINT_NAMES))
    msg.header.stamp = stamp(ns)
    msg.points = [JointTrajectoryPoint(positions=[float(x) for x in step],
                                       time_from_start=Duration(sec=int(k / STEP_HZ),
                                                                nanosec=int(round((k / STEP_HZ % 1) * 1e9))))
                  for k, step in enumerate(steps)]
    return msg


def record_session(directory, raw_frames=False):
    """A session as the client node records it: per observation the frames sent, the state sent, the task
    and the chunk the `hold` mock answered; plus commands, twists, status and the state inputs."""
    engine = MockEngine(ServerConfig(mock_mode=True).engine_config())
    recorder = SessionRecorder(str(directory), max_bytes=0, max_files=0)
    path = recorder.start_session("groot_session_test")
    t0 = 1_750_000_000_000_000_000
    expected = []
    for k in range(N_OBS):
        capture = t0 + k * 66_666_667
        state = state_of(k)
        task = "find the can and pick it up" if k < 3 else "put it down"
        frames = {}
        for c, camera in enumerate(layout.CAMERA_NAMES):
            rgb = make_frame(seed=k * 4 + c)
            msg = CompressedImage()
            msg.header.stamp, msg.header.frame_id = stamp(capture), camera
            if raw_frames:
                msg.format = f"rgb8; raw {layout.IMAGE_WIDTH}x{layout.IMAGE_HEIGHT}"
                msg.data = rgb.tobytes()
            else:
                msg.format = "jpeg"
                msg.data = images.encode_jpeg(rgb, 90)
            frames[camera] = bytes(msg.data)
            recorder.record(f"{NS}/debug/image/{camera}", msg, capture)
        sent = JointState(name=list(layout.JOINT_NAMES), position=[float(x) for x in state])
        sent.header.stamp = stamp(capture)
        recorder.record(f"{NS}/debug/state", sent, capture)
        recorder.record(f"{NS}/debug/task", String(data=task), capture)
        batch = ObservationBatch(images={}, state=state[None], language=(task,))
        chunk = engine.infer(batch).actions[0]
        np.testing.assert_allclose(chunk, hold_chunk(state), rtol=1e-6, atol=1e-7)  # the mock is `hold`
        recorder.record(f"{NS}/debug/chunk", trajectory(capture, chunk), capture)
        expected.append((capture, frames, state, task, chunk))
        # what the robot did meanwhile: measured state in, commands out, status
        for tick in range(3):
            when = capture + tick * 10_000_000
            measured = JointState(name=list(reversed(ARM_JOINTS)), position=[float(x) for x in reversed(state[6:])])
            measured.header.stamp = stamp(when)
            recorder.record("/alfie/joint_states", measured, when)
            base = Twist()
            base.linear.x, base.angular.z = float(state[0]), float(state[5])
            recorder.record("/alfie/base_velocity", base, when)
            command = JointState(name=list(ARM_JOINTS), position=[float(x) for x in chunk[0, 6:]])
            command.header.stamp = stamp(when)
            recorder.record(f"{NS}/joint_commands", command, when)
            twist = Twist()
            twist.linear.x = float(chunk[0, 0])
            recorder.record(f"{NS}/cmd_vel", twist, when)
        recorder.record(f"{NS}/status", String(data=json.dumps({"state": "ACTIVE", "k": k})), capture)
    recorder.close()
    assert recorder.stats()["dropped"] == 0
    return path, expected


@pytest.fixture
def session_file(tmp_path):
    return record_session(tmp_path)


def test_read_session_pairs_what_was_recorded(session_file):
    path, expected = session_file
    session = read_session(path)
    assert session.complete and session.warnings == []
    assert len(session.observations) == N_OBS
    for obs, (capture, frames, state, task, chunk) in zip(session.observations, expected):
        assert obs.capture_time == pytest.approx(capture * 1e-9, abs=1e-9)
        assert obs.frames == frames and set(obs.formats.values()) == {"jpeg"}
        np.testing.assert_array_equal(obs.state, state)
        assert obs.state.dtype == np.float32 and obs.state.shape == (21,)
        assert obs.task == task and obs.joint_names == layout.JOINT_NAMES
        np.testing.assert_array_equal(obs.chunk, chunk)
        assert obs.chunk.shape == (16, 21) and obs.chunk.dtype == np.float32
    times, names, positions = session.commands
    assert names == ARM_JOINTS and positions.shape == (3 * N_OBS, 15) and np.all(np.diff(times) >= 0)
    np.testing.assert_allclose(positions[0], expected[0][4][0, 6:], rtol=1e-6)
    twist_times, twists = session.twists
    assert twists.shape == (3 * N_OBS, 6) and twists[0, 0] == pytest.approx(float(expected[0][4][0, 0]))
    m_times, measured = session.measured_state
    assert measured.shape == (6 * N_OBS, 21)
    # joint_states by name -> layout order; the base from the Twist; NaN until first measured
    assert np.isnan(measured[0, :6]).all()
    np.testing.assert_allclose(measured[1, 6:], expected[0][2][6:], rtol=1e-6)
    assert measured[1, 0] == pytest.approx(float(expected[0][2][0]))
    assert [s["k"] for s in session.statuses] == list(range(N_OBS))
    assert session.topics[f"{NS}/debug/image/left_wide"] == N_OBS and session.topics[f"{NS}/cmd_vel"] == 3 * N_OBS


def test_read_session_refuses_what_is_not_a_session(tmp_path):
    with pytest.raises(SessionError):
        read_session(tmp_path / "missing.mcap")
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not an mcap file at all")
    with pytest.raises(SessionError):
        read_session(bad)


class LeftArmPlus(MockEngine):
    """A 'new engine' that differs from the recorded one by +0.1 on the left arm only."""

    def infer(self, batch):
        out = super().infer(batch)
        out.actions[:, :, 6:12] += np.float32(0.1)
        return out


def serve(ipc_path, engine_class=MockEngine, **overrides):
    config = ServerConfig(mock_mode=True, transport="ipc", ipc_path=ipc_path, **overrides)
    return BackgroundServer(PolicyService(engine_class(config.engine_config()), config))


def run_main(args, tmp_path):
    out = tmp_path / "report.json"
    rc = replay.main([*map(str, args), "--json", str(out), "--timeout-ms", "5000"])
    return rc, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize("protocol", ["alfie", "gr00t"])
def test_replay_against_the_hold_mock_is_exactly_zero(session_file, ipc_path, tmp_path, protocol, capsys):
    path, _ = session_file
    with serve(ipc_path) as server:
        rc, report = run_main([path, "--server", f"ipc://{ipc_path}", "--protocol", protocol], tmp_path)
    assert rc == 0
    assert report["compared"] == N_OBS and report["failures"] == [] and server.service.errors == 0
    assert set(report["groups"]) == {g.name for g in layout.LAYOUT_GROUPS}
    for name, group in report["groups"].items():
        assert group["rms"] == 0.0 and group["max"] == 0.0 and group["rms_per_step"] == [0.0] * 16, name
    assert report["round_trip_ms"]["n"] == N_OBS and report["round_trip_ms"]["p99"] >= report["round_trip_ms"]["p50"]
    printed = capsys.readouterr().out
    assert "left_arm" in printed and "round trip ms: p50" in printed


def test_replay_of_raw_frames_is_exactly_zero(tmp_path, ipc_path):
    path, _ = record_session(tmp_path / "raw", raw_frames=True)
    with serve(ipc_path):
        rc, report = run_main([path, "--server", f"ipc://{ipc_path}"], tmp_path)
    assert rc == 0 and report["compared"] == N_OBS
    assert all(g["max"] == 0.0 for g in report["groups"].values())


@pytest.mark.parametrize("protocol", ["alfie", "gr00t"])
def test_replay_reports_a_perturbed_engine_per_group(session_file, ipc_path, tmp_path, protocol):
    path, _ = session_file
    with serve(ipc_path, LeftArmPlus):
        rc, report = run_main([path, "--server", f"ipc://{ipc_path}", "--protocol", protocol], tmp_path)
    assert rc == 0 and report["compared"] == N_OBS
    left = report["groups"]["left_arm"]
    assert left["rms"] == pytest.approx(0.1, abs=1e-6) and left["max"] == pytest.approx(0.1, abs=1e-6)
    assert left["rms_per_step"] == pytest.approx([0.1] * 16, abs=1e-6)
    for name in ("base_velocity", "right_arm", "head"):
        assert report["groups"][name]["max"] == 0.0, name
    assert report["joints"]["left_gripper"]["rms"] == pytest.approx(0.1, abs=1e-6)
    assert report["joints"]["right_gripper"]["max"] == 0.0


def test_replay_plots(session_file, ipc_path, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = session_file
    with serve(ipc_path):
        rc, _ = run_main([path, "--server", f"ipc://{ipc_path}", "--plot", tmp_path / "plots"], tmp_path)
    assert rc == 0
    names = sorted(os.listdir(tmp_path / "plots"))
    assert names == sorted(["rms_per_step.png"] + [f"step0_{g.name}.png" for g in layout.LAYOUT_GROUPS])
    assert all((tmp_path / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def run_cli(args, timeout=60):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.replay", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("protocol", ["alfie", "gr00t"])
def test_an_unreachable_server_exits_2_with_the_reason(session_file, ipc_dir, protocol):
    path, _ = session_file
    done = run_cli([path, "--server", f"ipc://{ipc_dir}/nobody.sock", "--protocol", protocol, "--timeout-ms", "300"])
    assert done.returncode == 2, done.stderr
    assert "cannot reach the server" in done.stderr and "nobody.sock" in done.stderr
    assert done.stdout == ""


def test_an_unreadable_session_exits_2(tmp_path):
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"\x00" * 64)
    for target in (bad, tmp_path / "missing.mcap"):
        done = run_cli([target, "--server", "127.0.0.1:9"])
        assert done.returncode == 2 and "cannot read" in done.stderr, done.stderr


def test_a_bag_of_another_tool_is_refused_with_what_it_holds(tmp_path):
    """A rosbag2 bag written by another tool (rosbags' Writer, its own CDR serializer) reads, but holds no
    observation: the refusal names what replay needs and what the bag holds."""
    pytest.importorskip("rosbags")
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    text = store.types["std_msgs/msg/String"]
    bag = tmp_path / "teleop"
    with Writer(bag, version=9) as writer:
        connection = writer.add_connection("/task", "std_msgs/msg/String", typestore=store)
        for k in range(3):
            writer.write(connection, 1_000 + k, store.serialize_cdr(text(data=f"pick {k}"), "std_msgs/msg/String"))
    done = run_cli([bag, "--server", "127.0.0.1:9"])
    assert done.returncode == 2, done.stderr
    reason = done.stderr.strip()
    assert "holds no observation" in reason and "/task (3)" in reason and "debug/image" in reason, reason
    assert not reason.endswith((":", "?", ";")), reason


def test_the_bare_storage_file_replays_like_the_directory(session_file, ipc_path, tmp_path):
    path, _ = session_file
    storage = os.path.join(path, f"{os.path.basename(path)}_0.mcap")
    with serve(ipc_path):
        rc, report = run_main([storage, "--server", f"ipc://{ipc_path}"], tmp_path)
    assert rc == 0 and report["compared"] == N_OBS and all(g["max"] == 0.0 for g in report["groups"].values())


def test_a_wrong_token_is_refused_with_exit_2(session_file, ipc_path, tmp_path):
    path, _ = session_file
    with serve(ipc_path, api_token="right-token"):
        rc, report = run_main([path, "--server", f"ipc://{ipc_path}", "--api-token", "wrong"], tmp_path)
    assert rc == 2 and report is None


def test_a_bad_stats_file_is_refused_with_the_reason(session_file, tmp_path):
    path, _ = session_file
    bad = tmp_path / "stats.json"
    bad.write_text("{not json")
    for stats_file in (bad, tmp_path / "missing.json"):
        done = run_cli([path, "--server", "127.0.0.1:9", "--stats-file", stats_file])
        assert done.returncode == 2 and "--stats-file" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().split(": ", 2)[-1], done.stderr
