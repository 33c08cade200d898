"""groot_bag: look into a recorded session (any rosbag2 bag) and make an unfinished one whole, without ROS.

    groot_bag info BAG       what `ros2 bag info BAG` prints: files, duration, start, messages, topics
    groot_bag reindex BAG    a bag whose recorder was killed: rewrite its cut storage file whole and
                             write metadata.yaml (what `ros2 bag reindex` does, for MCAP storage)

Exit status: 0 done, 2 the path is not a bag (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time

from alfie_gr00t.bag import metadata as bagmeta
from alfie_gr00t.bag.reader import BagError, open_bag
from alfie_gr00t.bag.recover import reindex


def info_lines(path) -> list[str]:
    bag = open_bag(path)
    meta = bag.metadata
    counts: dict[str, list] = {}
    if meta is None:  # no metadata.yaml: count from the storage
        for message in bag.messages():
            entry = counts.setdefault(message.topic, [message.schema.name if message.schema else "?", 0])
            entry[1] += 1
        total = sum(n for _, n in counts.values())
        topics = [(t, ty, n) for t, (ty, n) in counts.items()]
        start, duration = 0, 0
    else:
        topics = [(t.name, t.type, t.message_count) for t in meta.topics]
        total, start, duration = meta.message_count, meta.starting_time_ns, meta.duration_ns
    lines = [f"Files:             {', '.join(bag.files)}",
             f"Storage id:        {bag.storage}",
             f"Duration:          {duration * 1e-9:.9f}s",
             f"Start:             {time.strftime('%b %d %Y %H:%M:%S', time.localtime(start * 1e-9))}."
             f"{start % 1_000_000_000:09d} ({start * 1e-9:.9f})" if meta is not None else "Start:             (no metadata.yaml)",
             f"Messages:          {total}",
             "Topic information:"]
    lines += [f"  Topic: {t} | Type: {ty} | Count: {n} | Serialization Format: cdr" for t, ty, n in topics]
    lines += [f"warning: {w}" for w in bag.warnings]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_bag", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("info", help="summarize a bag (directory, .mcap or .db3)").add_argument("bag")
    sub.add_parser("reindex", help="rewrite a killed session whole and write its metadata.yaml").add_argument("bag")
    args = parser.parse_args(argv)
    try:
        if args.verb == "info":
            print("\n".join(info_lines(args.bag)))
        else:
            reindex(args.bag, log=print)
    except (BagError, bagmeta.MetadataError, OSError) as exc:
        print(f"groot_bag: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
