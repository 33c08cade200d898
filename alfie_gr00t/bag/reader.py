"""Read any rosbag2 bag of the robot, or a bare MCAP file, message by message. ROS-free.

`open_bag(path)` takes
- a bag directory with MCAP storage (`metadata.yaml` lists the files; without it, an unfinished bag
  whose writer was killed, the directory's `*.mcap` files are read in their split order),
- a bag directory with sqlite3 storage (`*.db3`, read with Python's sqlite3; the definitions from its
  `message_definitions` table, else from the installed message packages),
- a bare `.mcap` (our older sessions, Foxglove or `mcap` CLI recordings).

`Bag.messages()` yields `BagMessage`s in storage order. A file without a summary (killed writer) is
read up to its last complete record and `Bag.warnings` says so; `Bag.complete` is False then.
Compressed bags (rosbag2 file compression, `*.mcap.zstd`) are refused with how to decompress.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field

from alfie_gr00t.bag import metadata as bagmeta


class BagError(RuntimeError):
    """The path cannot be read as a bag at all; the message says why."""


@dataclass
class Schema:
    """What a decoder needs (the fields of an MCAP Schema record)."""

    id: int
    name: str  # 'pkg/msg/Type'
    encoding: str  # 'ros2msg'
    data: bytes


@dataclass
class BagMessage:
    topic: str
    schema: Schema | None
    encoding: str  # 'cdr'
    data: bytes
    log_time: int  # ns (rosbag2's receive time)
    publish_time: int  # ns


@dataclass
class Bag:
    path: str
    storage: str  # 'mcap' | 'sqlite3'
    files: list  # absolute paths, in order
    metadata: bagmeta.BagMetadata | None  # None: no metadata.yaml (a bare file, or an unfinished bag)
    warnings: list = field(default_factory=list)
    complete: bool = True  # every file ended cleanly (summary written)

    def messages(self):
        if self.storage == "sqlite3":
            yield from _sqlite_messages(self)
            return
        for path in self.files:
            yield from _mcap_messages(path, self)


_SPLIT = re.compile(r"_(\d+)\.(mcap|db3)$")


def _split_order(name: str) -> tuple:
    m = _SPLIT.search(name)
    return (int(m.group(1)) if m else -1, name)


def open_bag(path) -> Bag:
    path = os.fspath(path)
    if os.path.isfile(path):
        if path.endswith(".mcap"):
            return Bag(path=path, storage="mcap", files=[path], metadata=None)
        if path.endswith(".db3"):
            return Bag(path=path, storage="sqlite3", files=[path], metadata=None)
        if path.endswith(bagmeta.FILE_NAME):
            return open_bag(os.path.dirname(path) or ".")
        _refuse_compressed(path)
        raise BagError(f"{path}: not a bag (a rosbag2 directory, an .mcap or a .db3 file)")
    if not os.path.isdir(path):
        raise BagError(f"no such bag: {path}")
    names = sorted(os.listdir(path))
    meta = None
    if bagmeta.FILE_NAME in names:
        try:
            meta = bagmeta.read(path)
        except (bagmeta.MetadataError, OSError) as exc:
            raise BagError(f"{path}: {exc}") from exc
        if meta.compression_mode or any(f.path.endswith(".zstd") for f in meta.files):
            raise BagError(f"{path}: compressed bag ({meta.compression_mode} {meta.compression_format}): "
                           f"decompress it first (`ros2 bag decompress {path}`), then export the copy")
        storage = meta.storage_identifier
        files = [os.path.join(path, f.path) for f in meta.files]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise BagError(f"{path}: metadata.yaml lists files that are not there: {missing}")
    else:
        storage = "mcap" if any(n.endswith(".mcap") for n in names) else \
            "sqlite3" if any(n.endswith(".db3") for n in names) else ""
        ext = ".mcap" if storage == "mcap" else ".db3"
        files = [os.path.join(path, n) for n in sorted((n for n in names if n.endswith(ext)), key=_split_order)]
        if not files:
            for n in names:
                _refuse_compressed(os.path.join(path, n))
            raise BagError(f"{path}: no metadata.yaml and no .mcap or .db3 file: not a rosbag2 bag")
    if storage not in ("mcap", "sqlite3"):
        raise BagError(f"{path}: storage {storage!r} is not readable here (mcap or sqlite3); convert it: "
                       f"`ros2 bag convert -i {path} -o out.yaml` with storage_id mcap")
    bag = Bag(path=path, storage=storage, files=files, metadata=meta)
    if meta is None and storage == "mcap":
        bag.warnings.append(f"{path} has no metadata.yaml (the recording did not end cleanly?): reading its "
                            f"{len(files)} MCAP file(s); `groot_bag reindex {path}` writes it")
    return bag


def _refuse_compressed(path: str) -> None:
    if path.endswith((".zstd", ".zst")):
        raise BagError(f"{path}: a compressed bag file: decompress it first (`ros2 bag decompress`, or "
                       f"`zstd -d {path}`)")


def _mcap_messages(path: str, bag: Bag):
    from mcap.exceptions import InvalidMagic
    from mcap.records import Channel, DataEnd, Footer, Message
    from mcap.records import Schema as McapSchema
    from mcap.stream_reader import StreamReader

    schemas, channels = {}, {}
    ended, count = False, 0
    with open(path, "rb") as f:
        reader = StreamReader(f, record_size_limit=1 << 30)
        try:
            for record in reader.records:
                if isinstance(record, McapSchema):
                    schemas[record.id] = Schema(record.id, record.name, record.encoding, bytes(record.data))
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    channel = channels.get(record.channel_id)
                    if channel is None:
                        continue
                    count += 1
                    yield BagMessage(channel.topic, schemas.get(channel.schema_id), channel.message_encoding,
                                     bytes(record.data), record.log_time, record.publish_time)
                elif isinstance(record, (DataEnd, Footer)):
                    ended = True
        except InvalidMagic as exc:
            if count == 0 and not schemas:
                raise BagError(f"{path} is not an MCAP file: {exc}") from exc
            bag.warnings.append(f"{path}: bad trailing magic: {exc}")
        except Exception as exc:  # a truncated record or chunk: a crash. What came before is good.
            bag.warnings.append(f"{path} ends without a summary ({type(exc).__name__}: {exc or 'truncated'}): "
                                f"the recording did not end cleanly (killed?); read {count} messages up to the "
                                f"last complete chunk (`groot_bag reindex` makes the bag whole)")
            bag.complete = False
            return
    if not ended:
        bag.warnings.append(f"{path} has no summary: read {count} messages")
        bag.complete = False


def _sqlite_messages(bag: Bag):
    """rosbag2's sqlite3 storage: tables topics, messages (and message_definitions from Iron on)."""
    from alfie_gr00t.bag.definitions import message_definition

    for path in bag.files:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise BagError(f"{path}: cannot open the sqlite3 storage: {exc}") from exc
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"topics", "messages"} <= tables:
                raise BagError(f"{path}: not rosbag2 sqlite3 storage (tables {sorted(tables)})")
            definitions = {}
            if "message_definitions" in tables:
                for name, encoding, text in db.execute(
                        "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                    if text:
                        definitions[name] = (encoding, text)
            topics = {}
            for tid, name, msg_type, fmt in db.execute("SELECT id, name, type, serialization_format FROM topics"):
                if msg_type not in definitions:
                    try:
                        definitions[msg_type] = ("ros2msg", message_definition(msg_type))
                    except (FileNotFoundError, ValueError):
                        bag.warnings.append(f"{name}: no definition of {msg_type} in the bag or installed: skipped")
                        continue
                encoding, text = definitions[msg_type]
                topics[tid] = (name, Schema(tid, msg_type, encoding, text.encode()), fmt)
            for tid, stamp, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"):
                if tid in topics:
                    name, schema, fmt = topics[tid]
                    yield BagMessage(name, schema, fmt, bytes(data), int(stamp), int(stamp))
        except sqlite3.Error as exc:
            raise BagError(f"{path}: sqlite3 storage unreadable: {exc}") from exc
        finally:
            db.close()
