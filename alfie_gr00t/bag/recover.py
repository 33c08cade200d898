"""Make an unfinished bag whole again: what `ros2 bag reindex` does, for our MCAP bags. ROS-free.

A recorder killed mid-session (SIGKILL, power loss) leaves its bag directory without `metadata.yaml`
and its last storage file without a summary (the MCAP index at the end), though every chunk it
flushed is complete. `reindex(directory)`:

1. reads each `*.mcap` of the directory in split order, up to its last complete record;
2. rewrites a file that has no summary into a complete MCAP (same schemas, channels with their
   QoS metadata, every readable message in order, then the summary), replacing the original only
   once the copy is written (what was unreadable in the original was lost in the crash);
3. writes `metadata.yaml` (rosbag2 version 9) from what the files hold: topics, types, offered
   QoS, message counts, start and duration per file.

`groot_bag reindex <bag>` runs it; `ros2 bag reindex <bag> -s mcap` on a ROS 2 machine rebuilds
metadata.yaml the same way, but needs the files' summaries.
"""

from __future__ import annotations

import os

from alfie_gr00t.bag import metadata as bagmeta
from alfie_gr00t.bag.reader import BagError, _split_order
from alfie_gr00t.bag.writer import LIBRARY


def _scan(path: str, topics: dict, rewrite_to: str | None):
    """Read one MCAP file; with rewrite_to, copy it there as a complete file. Returns (FileInfo, complete)."""
    from mcap.records import Channel, DataEnd, Footer, Message, Schema
    from mcap.stream_reader import StreamReader
    from mcap.writer import CompressionType, Writer

    info = bagmeta.FileInfo(path=os.path.basename(path))
    schemas, channels, out_schema, out_channel = {}, {}, {}, {}
    out = writer = None
    if rewrite_to is not None:
        out = open(rewrite_to, "wb")
        writer = Writer(out, compression=CompressionType.ZSTD)
        writer.start(profile="ros2", library=LIBRARY)
    ended = False
    first = last = None
    records = 0
    try:
        with open(path, "rb") as f:
            try:
                for record in StreamReader(f, record_size_limit=1 << 30).records:
                    records += 1
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        channels[record.id] = record
                    elif isinstance(record, Message) and record.channel_id in channels:
                        channel = channels[record.channel_id]
                        schema = schemas.get(channel.schema_id)
                        topic = topics.get(channel.topic)
                        if topic is None:
                            qos = bagmeta.parse_qos(channel.metadata.get("offered_qos_profiles", ""))
                            topic = bagmeta.TopicInfo(name=channel.topic, type=schema.name if schema else "",
                                                      serialization_format=channel.message_encoding,
                                                      offered_qos_profiles=qos,
                                                      type_description_hash=channel.metadata.get("topic_type_hash", ""))
                            topics[channel.topic] = topic
                        topic.message_count += 1
                        info.message_count += 1
                        first = record.log_time if first is None else min(first, record.log_time)
                        last = record.log_time if last is None else max(last, record.log_time)
                        if writer is not None:
                            if channel.id not in out_channel:
                                if schema is not None and schema.id not in out_schema:
                                    out_schema[schema.id] = writer.register_schema(schema.name, schema.encoding,
                                                                                   schema.data)
                                out_channel[channel.id] = writer.register_channel(
                                    channel.topic, channel.message_encoding,
                                    out_schema.get(channel.schema_id, 0), dict(channel.metadata))
                            writer.add_message(out_channel[channel.id], record.log_time, record.data,
                                               record.publish_time, record.sequence)
                    elif isinstance(record, (DataEnd, Footer)):
                        ended = True
            except Exception as exc:  # noqa: BLE001 - the truncated tail of a killed recording: stop there
                if records == 0:
                    raise BagError(f"{path} is not an MCAP file ({type(exc).__name__}: {exc}): left as it is") from exc
                ended = False
        if writer is not None:
            writer.finish()
    finally:
        if out is not None:
            out.close()
            if records == 0 and os.path.exists(rewrite_to):
                os.remove(rewrite_to)
    info.starting_time_ns = first or 0
    info.duration_ns = (last - first) if first is not None else 0
    return info, ended


def reindex(directory, *, log=lambda line: None) -> str:
    """Rebuild `<directory>/metadata.yaml` from its MCAP files (rewriting unfinished ones whole);
    returns the metadata path."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise BagError(f"{directory}: not a bag directory")
    names = sorted((n for n in os.listdir(directory) if n.endswith(".mcap")), key=_split_order)
    if not names:
        if any(n.endswith(".db3") for n in os.listdir(directory)):
            raise BagError(f"{directory}: sqlite3 storage: use `ros2 bag reindex {directory} -s sqlite3`")
        raise BagError(f"{directory}: no .mcap storage file to reindex")
    topics: dict[str, bagmeta.TopicInfo] = {}
    files = []
    for name in names:
        path = os.path.join(directory, name)
        found: dict[str, bagmeta.TopicInfo] = {}
        info, complete = _scan(path, found, None)
        if not complete:
            tmp = path + ".recovered"
            found = {}
            info, _ = _scan(path, found, tmp)
            os.replace(tmp, path)
            log(f"{path}: no summary (the recording was cut): rewritten whole, {info.message_count} messages")
        for topic in found.values():
            if topic.name in topics:
                topics[topic.name].message_count += topic.message_count
            else:
                topics[topic.name] = topic
        files.append(info)
    meta = bagmeta.BagMetadata(files=files, topics=list(topics.values()))
    try:  # a bag that has one already: keep what the files cannot tell
        old = bagmeta.read(directory)
        meta.custom_data, meta.ros_distro = old.custom_data, old.ros_distro or meta.ros_distro
    except (OSError, bagmeta.MetadataError):
        pass
    written = bagmeta.write(directory, meta)
    log(f"wrote {written}: {meta.message_count} messages on {len(topics)} topics in {len(files)} file(s)")
    return written
