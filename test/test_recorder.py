"""SessionRecorder (alfie_gr00t/nodes/recorder.py): real CDR (rclpy.serialization) into a rosbag2 bag with
real MCAP storage, read back with the mcap reader and mcap-ros2-support's decoder (which compiles the
stored schema text). test_bag_strict.py reads the same bags with rosbags, an independent strict reader."""

import os
import sys
import textwrap
import threading

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import String

from alfie_gr00t.nodes.recorder import SessionRecorder, message_definition, type_name
from alfie_gr00t.tools.session import read_session

from support.killed import kill_after_flush
from support.recorded_messages import one_of_each

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_same(original, decoded, where="msg"):
    """Every field of a generated rclpy message equals the decoded one (recursively)."""
    for name in original.get_fields_and_field_types():
        a, b = getattr(original, name), getattr(decoded, name)
        if hasattr(a, "get_fields_and_field_types"):
            assert_same(a, b, f"{where}.{name}")
        elif isinstance(a, (list, tuple)) and a and hasattr(a[0], "get_fields_and_field_types"):
            assert len(a) == len(b), f"{where}.{name}: {len(a)} != {len(b)}"
            for k, (x, y) in enumerate(zip(a, b)):
                assert_same(x, y, f"{where}.{name}[{k}]")
        elif isinstance(a, (bytes, bytearray)) or (hasattr(a, "typecode") and a.typecode == "B"):
            assert bytes(a) == bytes(b) if not isinstance(b, int) else bytes(a) == bytes([b]), f"{where}.{name}"
        elif isinstance(a, str):
            assert a == b, f"{where}.{name}: {a!r} != {b!r}"
        else:
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"{where}.{name}: {a!r} != {b!r}"


def storage(bag, index=0):
    """The bag directory's `index`-th MCAP storage file."""
    return os.path.join(bag, f"{os.path.basename(bag)}_{index}.mcap")


def decoded_messages(bag):
    path = storage(bag) if os.path.isdir(bag) else bag
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        summary = reader.get_summary()
        out = list(reader.iter_decoded_messages(log_time_order=False))
    return header, summary, out


def test_every_message_type_round_trips_field_by_field(tmp_path):
    log = []
    recorder = SessionRecorder(str(tmp_path), max_bytes=10 << 20, max_files=0, log=log.append)
    assert recorder.record("/x", String(data="before"), 1) is False  # no session yet: not recorded, not a drop
    path = recorder.start_session("session_a")
    assert path == str(tmp_path / "session_a")
    sent = []
    for i in range(3):
        for topic, msg in one_of_each(i):
            publish = 1_700_000_000_000_000_000 + i * 1000
            assert recorder.record(topic, msg, publish)
            sent.append((topic, msg, publish))
    recorder.end_session()
    stats = recorder.stats()
    assert stats["written"] == len(sent) and stats["dropped"] == 0 and not stats["recording"]
    assert stats["bytes"] == os.path.getsize(storage(path)) and stats["last_error"] == ""
    assert sorted(os.listdir(path)) == ["metadata.yaml", "session_a_0.mcap"]
    header, summary, read = decoded_messages(path)
    assert header.profile == "ros2" and summary is not None
    assert len(read) == len(sent)
    log_times = [m.log_time for _, _, m, _ in read]
    assert all(b > a for a, b in zip(log_times, log_times[1:])), "log times must increase strictly"
    for (topic, original, publish), (schema, channel, message, decoded) in zip(sent, read):
        assert channel.topic == topic and channel.message_encoding == "cdr"
        assert schema.encoding == "ros2msg" and schema.name == type_name(original)
        assert message.publish_time == publish
        assert_same(original, decoded, topic)
    recorder.close()
    assert sum("recording session to" in line for line in log) == 1


def test_log_time_stays_monotonic_when_the_clock_steps_back(tmp_path):
    ticks = iter([5_000, 4_000, 4_000, 9_000, 1_000])
    recorder = SessionRecorder(str(tmp_path), max_bytes=0, max_files=0, clock_ns=lambda: next(ticks))
    path = recorder.start_session("s")
    for k in range(5):
        recorder.record("/t", String(data=str(k)), 42)
    recorder.close()
    _, _, read = decoded_messages(path)
    assert [m.log_time for _, _, m, _ in read] == [5_000, 5_001, 5_002, 9_000, 9_001]
    assert [d.data for *_, d in read] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("full_type", [
    "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/JointState", "std_msgs/msg/String",
    "trajectory_msgs/msg/JointTrajectory", "diagnostic_msgs/msg/DiagnosticStatus",
    "diagnostic_msgs/msg/DiagnosticArray", "geometry_msgs/msg/Twist", "std_msgs/msg/Float32MultiArray"])
def test_schema_text_is_rosbag2_style_and_decodes(full_type):
    text = message_definition(full_type)
    blocks = text.split("=" * 80 + "\n")
    package, _, name = full_type.split("/")
    import importlib
    module = importlib.import_module(f"{package}.msg")
    top = importlib.import_module(package)  # <prefix>/lib/pythonX.Y/site-packages/<pkg>/__init__.py
    root = os.path.join(os.path.dirname(top.__file__), "..", "..", "..", "..", "share", package, "msg", name + ".msg")
    with open(root, encoding="utf-8") as f:
        assert blocks[0].rstrip("\n") == f.read().rstrip("\n"), "the root block is the type's own .msg text"
    deps = [b.split("\n", 1)[0] for b in blocks[1:]]
    assert all(d.startswith("MSG: ") and d.count("/") == 1 for d in deps)
    assert len(deps) == len(set(deps))
    from mcap.records import Schema
    decoder = DecoderFactory().decoder_for("cdr", Schema(id=1, name=full_type, encoding="ros2msg", data=text.encode()))
    assert decoder is not None
    from rclpy.serialization import serialize_message
    msg = getattr(module, name)()
    assert_same(msg, decoder(serialize_message(msg)))


def test_a_missing_dependency_is_named_not_silently_skipped(tmp_path):
    """The checker can fail: a schema lacking its dependency block does not decode."""
    from mcap.records import Schema
    text = message_definition("sensor_msgs/msg/JointState").split("=" * 80)[0]  # Header's block cut off
    schema = Schema(id=1, name="sensor_msgs/msg/JointState", encoding="ros2msg", data=text.encode())
    from rclpy.serialization import serialize_message
    with pytest.raises(Exception):
        DecoderFactory().decoder_for("cdr", schema)(serialize_message(JointState()))


class StuckDisk:
    """A session file whose writes block until released: the slow disk."""

    release = threading.Event()
    blocked = threading.Event()

    def __init__(self, path):
        self.file = open(path, "xb")

    def write(self, data):
        if not self.release.is_set():
            self.blocked.set()
            assert self.release.wait(30), "test never released the disk"
        return self.file.write(data)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def test_a_stuck_disk_makes_record_drop_and_count_never_wait(tmp_path):
    disks = []

    def opener(path):
        disks.append(StuckDisk(path))
        return disks[-1]

    recorder = SessionRecorder(str(tmp_path), max_bytes=0, max_files=0, queue_size=50, opener=opener)
    path = recorder.start_session("slow")
    msgs = [String(data=f"m{k}") for k in range(200)]
    results = []
    for k, msg in enumerate(msgs):
        results.append(recorder.record("/alfie/groot_client/debug/task", msg, k + 1))
        if k == 0:
            assert StuckDisk.blocked.wait(10), "the writer thread never reached the disk"
    # all 200 calls returned on this thread while the writer thread was still inside write()
    assert len(disks) == 1 and not StuckDisk.release.is_set()
    assert results.count(True) == 50 and results[:50] == [True] * 50 and not any(results[50:])
    assert recorder.stats()["dropped"] == 150
    StuckDisk.release.set()
    recorder.end_session()
    stats = recorder.stats()
    assert stats["written"] == 50 and stats["dropped"] == 150
    _, _, read = decoded_messages(path)
    assert [d.data for *_, d in read] == [f"m{k}" for k in range(50)], "nothing before the queue filled is lost"
    recorder.close()


def image(n):
    return CompressedImage(format="jpeg", data=os.urandom(n))


def test_the_size_cap_ends_the_file_and_counts_the_rest(tmp_path):
    log = []
    cap = 40_000
    recorder = SessionRecorder(str(tmp_path), max_bytes=cap, max_files=0, log=log.append, chunk_bytes=8_000)
    path = recorder.start_session("big")
    results = [recorder.record("/alfie/groot_client/debug/image/left_wide", image(1000), k + 1) for k in range(200)]
    assert recorder.flush()
    stats = recorder.stats()
    assert not stats["recording"] and stats["written"] > 10 and stats["dropped"] > 0
    assert stats["written"] + stats["dropped"] == 200
    assert results.count(True) >= stats["written"]
    assert any("record_max_mb" in line for line in log)
    assert os.path.getsize(storage(path)) <= cap + 4096  # the summary written when the cap ends the file
    _, summary, read = decoded_messages(path)
    assert summary is not None and len(read) == stats["written"]
    assert recorder.record("/t", String(data="after"), 1) is False
    assert recorder.stats()["dropped"] == stats["dropped"] + 1
    # the next activation records again
    second = recorder.start_session("big")
    assert second != path and recorder.record("/t", String(data="again"), 1)
    recorder.end_session()
    assert recorder.stats()["written"] == 1 and recorder.stats()["dropped"] == 0
    recorder.close()


def test_the_file_count_cap_deletes_the_oldest_sessions(tmp_path):
    log = []
    (tmp_path / "notes.txt").write_text("not a session")
    recorder = SessionRecorder(str(tmp_path), max_bytes=0, max_files=3, log=log.append)
    for k in range(5):
        recorder.start_session(f"session_{k}")
        recorder.record("/t", String(data=str(k)), 1)
        recorder.end_session()
    names = sorted(os.listdir(tmp_path))
    assert names == ["notes.txt", "session_2", "session_3", "session_4"]
    assert sum("deleted the oldest session" in line for line in log) == 2
    assert recorder.stats()["files"] == 3
    recorder.close()


def test_a_killed_recording_process_leaves_a_readable_file(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from std_msgs.msg import String
        from alfie_gr00t.nodes.recorder import SessionRecorder
        r = SessionRecorder(sys.argv[1], max_bytes=0, max_files=0, flush_interval_s=30.0)
        r.start_session("killed")
        for k in range(100):
            r.record("/alfie/groot_client/debug/task", String(data=f"m{{k}}"), k + 1)
        assert r.flush()
        for k in range(100, 150):
            r.record("/alfie/groot_client/debug/task", String(data=f"m{{k}}"), k + 1)
        assert r.flush()
        for k in range(150, 170):  # queued, never flushed: lost with the process
            r.record("/alfie/groot_client/debug/task", String(data=f"m{{k}}"), k + 1)
        print("FLUSHED", flush=True)
        time.sleep(60)
    """)
    kill_after_flush(script, tmp_path)
    bag = tmp_path / "killed"
    assert sorted(os.listdir(bag)) == ["killed_0.mcap"], "no metadata.yaml: the session never ended"
    path = bag / "killed_0.mcap"
    session = read_session(bag)
    assert not session.complete and any("did not end cleanly" in w or "no summary" in w for w in session.warnings)
    assert session.topics == {"/alfie/groot_client/debug/task": 150}
    # cut the file inside its second chunk: the first one still reads
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader
    chunk_ends = []
    with open(path, "rb") as f:
        reader = StreamReader(f, emit_chunks=True)
        try:
            for record in reader.records:
                if isinstance(record, Chunk):
                    chunk_ends.append(reader._stream.count)
        except Exception:
            pass
    assert len(chunk_ends) == 2
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(path.read_bytes()[: chunk_ends[1] - 10])
    session = read_session(cut)
    assert session.topics["/alfie/groot_client/debug/task"] == 100
    assert any("did not end cleanly" in w for w in session.warnings)
