"""Our bags against rosbags, an independent strict reader (test/support/strict_bag.py): exact CDR bytes
for every recorded type, rosbag2's metadata.yaml and split files, and a recorder killed with SIGKILL
whose bag, after `groot_bag reindex`, reads whole."""

import os
import textwrap

import pytest
from rclpy.serialization import serialize_message

from support.strict_bag import JAZZY, strict_read
from support.recorded_messages import one_of_each
from support.ros_helpers import REPO
from support.killed import kill_after_flush

from alfie_gr00t.bag import metadata as bagmeta
from alfie_gr00t.bag.cdr import CdrError, cdr_length, exact_cdr
from alfie_gr00t.bag.reader import BagError, open_bag
from alfie_gr00t.nodes.recorder import SessionRecorder, type_name
from alfie_gr00t.tools import bag as bag_tool


@pytest.mark.parametrize("index", range(8))
def test_exact_cdr_is_what_an_independent_serializer_writes(index):
    topic, msg = one_of_each(3)[index]
    raw = serialize_message(msg)
    exact = exact_cdr(type(msg), raw)
    full = type_name(msg)
    again = bytes(JAZZY.serialize_cdr(JAZZY.deserialize_cdr(exact, full), full))
    assert exact == again, f"{full}: {len(exact)} vs {len(again)} bytes"
    assert cdr_length(type(msg), raw) == len(exact) <= len(raw)


def test_the_walk_refuses_a_cut_message():
    _, msg = one_of_each(0)[3]  # a JointTrajectory
    raw = exact_cdr(type(msg), serialize_message(msg))
    with pytest.raises(CdrError, match="truncated"):
        cdr_length(type(msg), raw[:-9])
    with pytest.raises(CdrError, match="encapsulation"):
        cdr_length(type(msg), b"\x01\x07" + raw[2:])


def test_a_session_split_in_files_lists_them_all(tmp_path):
    recorder = SessionRecorder(str(tmp_path), max_bytes=0, max_files=0, split_bytes=6_000, chunk_bytes=2_000)
    bag = recorder.start_session("split")
    sent = {}
    for i in range(40):
        for topic, msg in one_of_each(i):
            assert recorder.record(topic, msg, 1_000 + i)
            sent[topic] = sent.get(topic, 0) + 1
    recorder.close()
    meta = bagmeta.read(bag)
    names = sorted(os.listdir(bag))
    assert len(meta.files) > 2 and [f.path for f in meta.files] == [f"split_{k}.mcap" for k in range(len(meta.files))]
    assert names == sorted([f.path for f in meta.files] + ["metadata.yaml"])
    assert meta.version == 9 and meta.storage_identifier == "mcap" and meta.message_count == sum(sent.values())
    assert {t.name: t.message_count for t in meta.topics} == sent
    assert all(t.offered_qos_profiles[0]["reliability"] == "reliable" and t.type_description_hash.startswith("RIHS01_")
               for t in meta.topics)
    read = strict_read(bag)
    assert {t: len(v) for t, v in read.items()} == sent


def test_a_killed_session_reads_strictly_after_reindex(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        sys.path.insert(0, {os.path.join(REPO, "test")!r})
        from support.recorded_messages import one_of_each
        from alfie_gr00t.nodes.recorder import SessionRecorder
        r = SessionRecorder(sys.argv[1], max_bytes=0, max_files=0, flush_interval_s=30.0, chunk_bytes=4000)
        r.start_session("killed")
        for i in range(30):
            for topic, msg in one_of_each(i):
                r.record(topic, msg, 1_000 + i)
        assert r.flush()
        print("FLUSHED", flush=True)
        time.sleep(60)
    """)
    kill_after_flush(script, tmp_path)
    bag = tmp_path / "killed"
    assert os.listdir(bag) == ["killed_0.mcap"]
    unfinished = open_bag(bag)
    assert sum(1 for _ in unfinished.messages()) == 240 and not unfinished.complete
    with pytest.raises(Exception):  # rosbag2 and rosbags need metadata.yaml
        strict_read(bag)
    assert bag_tool.main(["reindex", str(bag)]) == 0
    read = strict_read(bag)
    assert sum(len(v) for v in read.values()) == 240 and len(read) == 8
    assert open_bag(bag).complete
    meta = bagmeta.read(bag)
    assert meta.message_count == 240 and meta.files[0].path == "killed_0.mcap"


def test_groot_bag_refuses_what_is_not_a_bag(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert bag_tool.main(["info", str(tmp_path)]) == 2
    assert "not a rosbag2 bag" in capsys.readouterr().err
    with pytest.raises(BagError, match="not a bag"):
        open_bag(tmp_path / "notes.txt")


def test_bytes_from_a_raw_subscription_are_stored_as_received(tmp_path):
    """A raw subscription's bytes (here: the wire form with the 4-byte alignment padding the middleware
    announces in the encapsulation options) go into the bag untouched, under the type they were given."""
    _, msg = one_of_each(1)[2]  # a String
    exact = exact_cdr(type(msg), serialize_message(msg))
    pad = -len(exact) % 4
    assert pad, "this String needs padding to a multiple of 4 on the wire"
    wire = exact[:2] + bytes([0, pad]) + exact[4:] + bytes(pad)
    recorder = SessionRecorder(str(tmp_path), max_bytes=0, max_files=0)
    bag = recorder.start_session("raw")
    assert recorder.record("/alfie/task", wire, 5, msg_type="std_msgs/msg/String")
    with pytest.raises(ValueError, match="msg_type"):
        recorder.record("/alfie/task", wire, 6)
    recorder.close()
    stored = [m for m in open_bag(bag).messages()]
    assert [m.data for m in stored] == [wire] and stored[0].schema.name == "std_msgs/msg/String"
    assert JAZZY.deserialize_cdr(wire, "std_msgs/msg/String").data == msg.data  # within rosbags' 3-byte slack
