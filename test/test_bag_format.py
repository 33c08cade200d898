"""alfie_gr00t.bag without ROS (it runs on the robot's Python 3.10 too): a bag written by BagWriter from
bytes of rosbags' own CDR serializer reads back strictly with rosbags, metadata.yaml is rosbag2's
version 9, an aborted writer (what a kill leaves) is made whole by reindex, and what is not a bag is
refused with the reason."""

import os

import numpy as np
import pytest
import yaml

from support.strict_bag import JAZZY, strict_read

from alfie_gr00t.bag import metadata as bagmeta
from alfie_gr00t.bag.reader import BagError, open_bag
from alfie_gr00t.bag.recover import reindex
from alfie_gr00t.bag.writer import BagWriter

T = JAZZY.types


def messages(n):
    for k in range(n):
        stamp = T["builtin_interfaces/msg/Time"](sec=100 + k, nanosec=7)
        joints = T["sensor_msgs/msg/JointState"](
            header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="base"), name=["a", "bb"],
            position=np.array([k, -k], float), velocity=np.zeros(0), effort=np.zeros(0))
        yield "/joint_states", "sensor_msgs/msg/JointState", joints, 1_000 + 10 * k
        yield "/task", "std_msgs/msg/String", T["std_msgs/msg/String"](data=f"step {k}"), 1_001 + 10 * k


def write(directory, n, **kw):
    writer = BagWriter(str(directory), **kw)
    for topic, msgtype, msg, t in messages(n):
        if not writer.has_topic(topic):
            definition, _ = JAZZY.generate_msgdef(msgtype, ros_version=2)
            writer.add_topic(topic, msgtype, definition, qos=[bagmeta.qos_profile(depth=5)])
        writer.write(topic, bytes(JAZZY.serialize_cdr(msg, msgtype)), t)
    return writer


def test_a_written_bag_is_rosbag2s_and_reads_strictly(tmp_path):
    bag = tmp_path / "run"
    write(bag, 50, split_bytes=1_500, chunk_bytes=500).close()
    doc = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert doc["version"] == 9 and doc["storage_identifier"] == "mcap" and doc["message_count"] == 100
    assert doc["relative_file_paths"] == [f["path"] for f in doc["files"]] and len(doc["files"]) > 1
    assert doc["starting_time"]["nanoseconds_since_epoch"] == 1_000 and doc["duration"]["nanoseconds"] == 491
    assert sum(f["message_count"] for f in doc["files"]) == 100
    topic = doc["topics_with_message_count"][0]
    qos = topic["topic_metadata"]["offered_qos_profiles"]
    assert isinstance(qos, list) and qos[0]["history"] == "keep_last" and qos[0]["depth"] == 5
    assert qos[0]["deadline"] == {"sec": 9223372036, "nsec": 854775807}
    read = strict_read(bag)
    assert [m.data for m in read["/task"]] == [f"step {k}" for k in range(50)]
    assert [list(m.position) for m in read["/joint_states"]][3] == [3.0, -3.0]


def test_an_aborted_bag_reads_with_a_warning_and_reindexes_whole(tmp_path):
    bag = tmp_path / "cut"
    writer = write(bag, 40, chunk_bytes=400)
    writer.flush()
    writer.abort()  # the file as a killed process leaves it: no summary, no metadata.yaml
    assert os.listdir(bag) == ["cut_0.mcap"]
    unfinished = open_bag(bag)
    assert sum(1 for _ in unfinished.messages()) == 80 and not unfinished.complete
    assert any("no metadata.yaml" in w for w in unfinished.warnings)
    reindex(bag)
    meta = bagmeta.read(str(bag))
    assert meta.message_count == 80 and {t.name: t.message_count for t in meta.topics} == {"/joint_states": 40,
                                                                                          "/task": 40}
    assert meta.topics[0].offered_qos_profiles[0]["depth"] == 5  # from the channel's metadata
    assert sum(len(v) for v in strict_read(bag).values()) == 80


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "x").mkdir(), "not a rosbag2 bag"),
    (lambda p: (p / "x").mkdir() or (p / "x" / "metadata.yaml").write_text("hello: 1"), "rosbag2_bagfile_information"),
    (lambda p: (p / "x").write_bytes(b"\x89MCAP0\r\n" + bytes(40)), "not a bag"),
    (lambda p: (p / "x").mkdir() or (p / "x" / "x_0.mcap.zstd").write_bytes(b"zz"), "decompress"),
])
def test_what_is_not_a_bag_is_refused_with_the_reason(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(BagError, match=message):
        list(open_bag(tmp_path / "x").messages())


def test_a_writer_refuses_a_directory_in_use(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        BagWriter(str(tmp_path / "used"))
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"


def test_a_split_bag_decodes_every_file_with_its_own_schemas(tmp_path):
    """Schema ids restart in every file of a split bag: a type first seen in file 1 under id 1 must not be
    decoded with file 0's id 1 (another type)."""
    from alfie_gr00t.tools.session import decoded

    names = [f"joint_{k:03d}" for k in range(40)]
    big = T["sensor_msgs/msg/JointState"](header=T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id=""), name=names,
        position=np.arange(40, dtype=float), velocity=np.zeros(0), effort=np.zeros(0))
    writer = BagWriter(str(tmp_path / "split"), split_bytes=1_000)
    for topic, msgtype, msg in (("/joint_states", "sensor_msgs/msg/JointState", big),
                                ("/task", "std_msgs/msg/String", T["std_msgs/msg/String"](data="after the split"))):
        writer.add_topic(topic, msgtype, JAZZY.generate_msgdef(msgtype, ros_version=2)[0])
        writer.write(topic, bytes(JAZZY.serialize_cdr(msg, msgtype)), 10)
    writer.close()
    files = bagmeta.read(str(tmp_path / "split")).files
    assert [f.message_count for f in files] == [1, 1]  # the String opens file 1, under schema id 1 there
    warnings = []
    got = [(message.topic, kind) for message, _, kind in decoded(open_bag(tmp_path / "split"), warnings)]
    assert warnings == [] and got == [("/joint_states", "sensor_msgs/JointState"), ("/task", "std_msgs/String")]


def test_reindex_leaves_what_is_not_mcap_as_it_is(tmp_path):
    bag = tmp_path / "odd"
    bag.mkdir()
    (bag / "odd_0.mcap").write_bytes(b"this is not an MCAP file")
    with pytest.raises(BagError, match="not an MCAP file"):
        reindex(bag)
    assert sorted(os.listdir(bag)) == ["odd_0.mcap"]
    assert (bag / "odd_0.mcap").read_bytes() == b"this is not an MCAP file"
