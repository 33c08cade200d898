"""Session recording wired into the real client node (real rclpy, real ZeroMQ, real MCAP files):

- a demo-like run (the mock groot_server, groot_client, the sim robot, launch namespace `alfie`) with
  `record_dir` set writes one MCAP file per activation holding every message kind, log times
  increasing, and it reads back with the session reader;
- a recorder whose disk is artificially slow drops and counts, and the 100 Hz loop keeps its rate.
"""

from __future__ import annotations

import os
import time

import numpy as np
from mcap.reader import make_reader
from std_msgs.msg import Bool

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.nodes.recorder import SessionRecorder
from alfie_gr00t.tools.rig import ACTIVATE_TOPIC, NodeRig
from alfie_gr00t.tools.session import read_session
from support.ros_helpers import next_domain_id
from support.ros_helpers import wait_for
from rcl_interfaces.msg import Log

from alfie_gr00t.bag import metadata as bagmeta
from support.strict_bag import strict_read
from support.client_harness import CONNECT_S, ScriptedServer, client_and_robot, wait_state

NS = "/alfie/groot_client"


def _session_over(client) -> bool:
    return not client._session_open and not client.recorder.stats()["recording"]


def _activation(rig, publisher, seconds: float) -> None:
    """Activate, run `seconds` ACTIVE with chunks flowing, deactivate, wait until the file is closed."""
    assert rig.activate(timeout_s=CONNECT_S), rig.client.status()
    chunks = rig.client.scheduler.chunks_received
    assert wait_for(lambda: rig.client.scheduler.chunks_received >= chunks + 3, timeout=CONNECT_S)
    time.sleep(seconds)
    publisher.publish(Bool(data=False))
    assert wait_for(lambda: rig.client.machine.state is ClientState.IDLE, timeout=5.0)
    assert wait_for(lambda: _session_over(rig.client), timeout=10.0), rig.client.recorder.stats()


def test_a_recorded_demo_has_every_message_kind_one_file_per_activation(ipc_dir):
    record_dir = os.path.join(ipc_dir, "sessions")
    with NodeRig(next_domain_id(), os.path.join(ipc_dir, "groot.sock"), server={"warmup_runs": 0},
                 client={"record_dir": record_dir, "encode_threads": 1, "record_split_mb": 0.1},
                 robot={"camera_width": 160, "camera_height": 120}, log_level="info") as rig:
        deactivate = rig.monitor.create_publisher(Bool, ACTIVATE_TOPIC, 10)
        logged = []
        rig.subscribe(Log, "/rosout", lambda m: logged.append(m.msg) if "recording" in m.msg else None, depth=100)
        rig.spin()
        _activation(rig, deactivate, 1.3)  # > 1 s: the 1 Hz status and /diagnostics are in it
        first = rig.client.status()["recording"]
        _activation(rig, deactivate, 0.3)
        wait_for(lambda: sum("recording ended" in m for m in logged) >= 2, timeout=5.0)
    starts = [m for m in logged if "record" in m and "ended" not in m]
    assert len(starts) == 2 and all(m.startswith("recording session to ") for m in starts), logged  # one a session
    files = sorted(os.path.join(record_dir, f) for f in os.listdir(record_dir))
    assert len(files) == 2 and all(os.path.isdir(f) for f in files), files  # one rosbag2 bag per activation
    assert first["path"] == files[0] and first["written"] > 0 and first["dropped"] == 0, first
    for bag in files:  # rosbags, an independent strict reader: every message exactly its CDR bytes
        name = os.path.basename(bag)
        listed = [f.path for f in bagmeta.read(bag).files]  # split past record_split_mb, every file listed
        assert listed == [f"{name}_{k}.mcap" for k in range(len(listed))]
        assert sorted(os.listdir(bag)) == sorted(["metadata.yaml", *listed])
        strict = strict_read(bag)
        assert strict[f"{NS}/debug/chunk"] and strict[f"{NS}/joint_commands"] and strict["/alfie/joint_states"]
        qos = {t.name: t.offered_qos_profiles for t in bagmeta.read(bag).topics}
        offered = qos[f"{NS}/joint_commands"][0]  # the graph's view of the publisher, as ros2 bag record stores it
        assert (offered["reliability"], offered["durability"]) == ("reliable", "volatile"), offered
        assert all(profiles for profiles in qos.values()), qos

    session = read_session(files[0])
    assert session.complete and not session.warnings, session.warnings
    expected = [f"{NS}/debug/image/{c}" for c in layout.CAMERA_NAMES] + [
        f"{NS}/debug/{t}" for t in ("state", "task", "chunk", "chunk_scheduled", "gate")] + [
        f"{NS}/joint_commands", f"{NS}/cmd_vel", f"{NS}/status", "/diagnostics", "/alfie/joint_states",
        "/alfie/base_velocity"]
    missing = [t for t in expected if not session.topics.get(t)]
    assert not missing, (missing, session.topics)
    # observations: frames as sent, the state, the task and the raw chunk, paired by capture time
    assert len(session.observations) >= 3
    captures = [o.capture_time for o in session.observations]
    assert captures == sorted(captures)
    for obs in session.observations:
        assert set(obs.frames) == set(layout.CAMERA_NAMES) and all(f[:2] == b"\xff\xd8" for f in obs.frames.values())
        assert obs.state.shape == (21,) and obs.task == rig.client.config.task_description
        assert obs.chunk is not None and obs.chunk.shape == (16, 21)
        assert tuple(obs.joint_names) == tuple(layout.JOINT_NAMES)
    assert session.scheduled and session.gate
    times, names, positions = session.commands
    assert len(times) > 50 and positions.shape == (len(times), 15) and list(names) == list(layout.JOINT_NAMES[6:])
    assert len(session.twists[0]) == len(times)  # every command carries its twist
    assert len(session.measured_state[0]) > 10 and session.measured_state[1].shape[1] == 21
    assert session.statuses and session.statuses[0]["state"] in ("CONNECTING", "ACTIVE")
    # the hold published on leaving ACTIVE is in the file: the last command is where the robot was
    last_gate = [g for _, g in session.gate if g["kind"] != "none"][-1]
    assert last_gate["kind"] == "hold" and last_gate["message"] == "activate:false", last_gate

    assert len(bagmeta.read(files[0]).files) > 1, "the 1.3 s activation is past 0.1 MB: split"
    for bag in files:  # log times strictly increasing in file order; publish times never after log times
        stamps = []
        for part in bagmeta.read(bag).files:
            with open(os.path.join(bag, part.path), "rb") as f:
                stamps += [(m.log_time, m.publish_time) for _, _, m in make_reader(f).iter_messages(log_time_order=False)]
        logs = np.array([s[0] for s in stamps])
        assert len(logs) > 10 and np.all(np.diff(logs) > 0)
        assert all(p <= lt for lt, p in stamps)
    assert read_session(files[1]).observations


class SlowDisk:
    """A session file on a disk that takes `delay_s` per write (until `fast` is set)."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.fast = False
        self.writes = 0

    def open(self, path: str):
        disk = self

        class File:
            def __init__(self):
                self._f = open(path, "xb")

            def write(self, data):
                disk.writes += 1
                if not disk.fast:
                    time.sleep(disk.delay_s)
                return self._f.write(data)

            def flush(self):
                self._f.flush()

            def close(self):
                self._f.close()

        return File()


def test_a_slow_disk_drops_and_counts_and_never_delays_the_tick(ros_context, ipc_path, ipc_dir):
    disk = SlowDisk(0.5)
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
        # The node's recorder, on the slow disk (what record_dir builds, with a small queue).
        client.recorder = SessionRecorder(os.path.join(ipc_dir, "slow"), max_bytes=1 << 30, max_files=5,
                                          queue_size=100, clock_ns=lambda: client.get_clock().now().nanoseconds,
                                          opener=disk.open)
        client.create_timer(0.1, client._watch_session)
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: disk.writes >= 1, timeout=5.0)
        start_count, start = client.gate.policy_commands, time.monotonic()
        time.sleep(2.0)
        commands, elapsed = client.gate.policy_commands - start_count, time.monotonic() - start
        stats = client.recorder.stats()
        print(f"slow disk: {commands} policy commands in {elapsed:.2f} s, recorder {stats}, "
              f"period p99 {client.status()['command_period_p99_ms']} ms")
        assert stats["dropped"] > 0 and stats["recording"], stats
        assert commands >= 0.5 * elapsed * client.config.command_rate_hz, "the tick was delayed by the disk"
        disk.fast = True
        robot.activate(False)
        assert wait_for(lambda: _session_over(client), timeout=15.0), client.recorder.stats()
    session = read_session(client.recorder.stats()["path"])
    assert session.commands[0].size > 0  # what was written is a readable session
