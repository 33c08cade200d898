"""rosbags (Ternaris, pure Python) as an independent, strict reader of our bags.

`strict_read(bag)` opens a rosbag2 bag directory with rosbags' own Reader (its metadata.yaml parser,
its MCAP or sqlite3 storage reader) and deserializes every message with rosbags' own ROS 2 Jazzy type
definitions, which refuse a message with bytes after its CDR end ("CDR message size mismatch").
It also re-serializes each message with rosbags' serializer and requires the stored bytes back, byte
for byte: nothing after the end, and no uninitialized padding."""

from __future__ import annotations

import pytest

rosbags = pytest.importorskip("rosbags", reason="rosbags (requirements.txt) is the independent strict reader")
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

JAZZY = get_typestore(Stores.ROS2_JAZZY)


def strict_read(bag, typestore=JAZZY) -> dict:
    """{topic: [decoded rosbags message, ...]} of every message; fails on any byte rosbags disputes."""
    out: dict = {}
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        for connection, _, raw in reader.messages():
            raw = bytes(raw)
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            again = bytes(typestore.serialize_cdr(msg, connection.msgtype))
            assert again == raw, (f"{connection.topic}: stored {len(raw)} bytes, the CDR serialization is "
                                  f"{len(again)} bytes" + ("" if len(again) != len(raw) else " (content differs)"))
            out.setdefault(connection.topic, []).append(msg)
    assert {t: len(v) for t, v in out.items()} == {t: n for t, n in counts.items() if n}, "metadata counts"
    return out
