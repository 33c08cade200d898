"""Write a rosbag2 bag with MCAP storage, as `ros2 bag record -s mcap` lays it out. ROS-free (mcap).

    <bag>/metadata.yaml        written at close (bag.metadata, version 9)
    <bag>/<bag>_0.mcap         profile "ros2"; schemas "ros2msg" (the full definition text); channels
    <bag>/<bag>_1.mcap ...     "cdr" with metadata offered_qos_profiles (YAML) and topic_type_hash;
                               a new file once one passes `split_bytes` (0 = never)

Each file ends with a "rosbag2" metadata record (`serialized_metadata`, the bag's metadata as
rosbag2's MCAP storage stores it) and its summary. Messages are chunked (zstd); `flush()` closes the
open chunk and flushes the file, so a killed writer leaves every flushed message readable, without
summary and without metadata.yaml: `alfie_gr00t.bag.recover.reindex` makes such a bag whole.
The writer stores the bytes it is given: pass exact CDR (bag.cdr).
"""

from __future__ import annotations

import os
from typing import Callable

import yaml

from alfie_gr00t.bag import metadata as bagmeta

LIBRARY = "alfie_gr00t bag writer (mcap python)"


class _CountingFile:
    """The open file as the mcap Writer sees it; counts the bytes written through it."""

    def __init__(self, raw):
        self.raw = raw
        self.count = 0

    def write(self, data) -> int:
        n = self.raw.write(data)
        self.count += len(data)
        return n if n is not None else len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


class BagWriter:
    def __init__(self, directory: str, *, split_bytes: int = 0, chunk_bytes: int = 256 * 1024,
                 opener: Callable[[str], object] | None = None, ros_distro: str = "jazzy",
                 custom_data: dict | None = None):
        """`directory` is created (it must not exist, or be empty); `opener(path)` opens a storage
        file for binary writing (tests inject a slow disk)."""
        self.directory = directory
        self.name = os.path.basename(os.path.normpath(directory))
        self.split_bytes = int(split_bytes)
        self._chunk_bytes = int(chunk_bytes)
        self._opener = opener or (lambda path: open(path, "xb"))
        if os.path.isdir(directory) and os.listdir(directory):
            raise FileExistsError(f"{directory} exists and is not empty: a bag needs a new directory")
        os.makedirs(directory, exist_ok=True)
        self.meta = bagmeta.BagMetadata(files=[], topics=[], ros_distro=ros_distro,
                                        custom_data=dict(custom_data or {}))
        self._topics: dict[str, bagmeta.TopicInfo] = {}
        self._definitions: dict[str, tuple[str, str]] = {}  # type -> (encoding, text)
        self._closed_bytes = 0  # bytes of the files already finished
        self._file = self._writer = None
        self._file_info: bagmeta.FileInfo | None = None
        self._open_file()

    # ------------------------------------------------------------------ topics and messages
    def add_topic(self, topic: str, msg_type: str, definition: str, *, qos: list | None = None,
                  type_hash: str = "", encoding: str = "ros2msg") -> None:
        """Declare a topic once, before its first message (a second declaration is ignored)."""
        if topic in self._topics:
            return
        self._topics[topic] = bagmeta.TopicInfo(name=topic, type=msg_type, offered_qos_profiles=list(qos or []),
                                               type_description_hash=type_hash)
        self.meta.topics.append(self._topics[topic])
        self._definitions.setdefault(msg_type, (encoding, definition))

    def has_topic(self, topic: str) -> bool:
        return topic in self._topics

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        info = self._topics[topic]
        if self.split_bytes > 0 and self._file_info.message_count and self.file_bytes + len(data) > self.split_bytes:
            self._finish_file()
            self._open_file()
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._register(info)
        self._writer.add_message(channel, int(log_time_ns), data,
                                 int(log_time_ns if publish_time_ns is None else publish_time_ns))
        self._pending += len(data) + 31
        if self._file.count != self._before:  # the writer closed a chunk by itself
            self._pending = 0
        self._before = self._file.count
        f = self._file_info
        if f.message_count == 0:
            f.starting_time_ns = int(log_time_ns)
        f.starting_time_ns = min(f.starting_time_ns, int(log_time_ns))
        f.duration_ns = max(f.duration_ns, int(log_time_ns) - f.starting_time_ns)
        f.message_count += 1
        info.message_count += 1

    def flush(self) -> None:
        """Close the open chunk and flush the file: everything written so far survives a kill."""
        if self._writer is not None:
            self._writer.flush()
            self._file.flush()
            self._pending = 0
            self._before = self._file.count

    @property
    def file_bytes(self) -> int:
        """Bytes of the open storage file, the open chunk's messages counted as they will take about."""
        return (self._file.count + self._pending) if self._file is not None else 0

    @property
    def bytes(self) -> int:
        return self._closed_bytes + self.file_bytes

    @property
    def paths(self) -> list[str]:
        return [os.path.join(self.directory, f.path) for f in self.meta.files]

    def close(self) -> str:
        """Finish the storage file and write metadata.yaml; returns its path."""
        self._finish_file()
        return bagmeta.write(self.directory, self.meta)

    def abort(self) -> None:
        """Stop writing (the disk failed): close the file as it is; no summary, no metadata.yaml."""
        raw, self._file, self._writer = self._file, None, None
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass

    # ------------------------------------------------------------------ files
    def _open_file(self) -> None:
        from mcap.writer import CompressionType, Writer

        relative = f"{self.name}_{len(self.meta.files)}.mcap"
        self._file = _CountingFile(self._opener(os.path.join(self.directory, relative)))
        self._writer = Writer(self._file, chunk_size=self._chunk_bytes, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library=LIBRARY)
        self._file_info = bagmeta.FileInfo(path=relative)
        self.meta.files.append(self._file_info)
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._pending = 0
        self._before = self._file.count

    def _register(self, info: bagmeta.TopicInfo) -> int:
        schema = self._schemas.get(info.type)
        if schema is None:
            encoding, text = self._definitions[info.type]
            schema = self._writer.register_schema(info.type, encoding, text.encode())
            self._schemas[info.type] = schema
        channel = self._writer.register_channel(
            info.name, info.serialization_format, schema,
            metadata={"offered_qos_profiles": bagmeta.qos_yaml(info.offered_qos_profiles),
                      "topic_type_hash": info.type_description_hash})
        self._channels[info.name] = channel
        return channel

    def _finish_file(self) -> None:
        writer, raw = self._writer, self._file
        if writer is None:
            return
        self._writer = self._file = None
        try:
            info = bagmeta.to_dict(self.meta)[bagmeta.ROOT_KEY]
            writer.add_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(info, sort_keys=False)})
            writer.finish()
            raw.flush()
        finally:
            raw.close()
            self._closed_bytes += raw.count
