"""groot_export_dataset: recordings -> a LeRobot v2.1 dataset that Isaac-GR00T fine-tunes from.

    groot_export_dataset SESSION [SESSION ...] OUT [--fps 15] [--fourcc mp4v] [--force]
    groot_export_dataset BAG [BAG ...] OUT --topic-map config/topic_map.example.yaml [--task TEXT]

Without --topic-map each input is a session recorded by groot_client (its bag directory, or a bare
.mcap): one episode each, resampled from its first published joint command to its last one (the
action is what the client commanded; the images the frames sent to the policy). With --topic-map
each input is any rosbag2 bag of the robot (MCAP or sqlite3 storage, a directory or a bare .mcap),
a teleoperation demo recorded with `ros2 bag record` for example: the map says which topics are the
cameras, the state, the action, the task and the episode boundaries (alfie_gr00t/dataset/topic_map.py).

Every episode is resampled onto a fixed grid at --fps (alfie_gr00t/dataset/episode.py) and written as
LeRobot v2.1 in Isaac-GR00T's "GR00T LeRobot" layout (alfie_gr00t/dataset/lerobot.py). The output is
deterministic: the same inputs and options write the same bytes. Exit status: 0 written, 2 refused
(the reason on stderr): an input that cannot be read or be an episode, or OUT not empty without --force.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

from alfie_gr00t import layout
from alfie_gr00t.dataset.episode import (  # noqa: F401 (the export's API, re-exported)
    DEFAULT_FPS, DEFAULT_MAX_GAP_S, TIME_EPS_S, Episode, ExportError, latest_at_or_before, resample, resample_streams)
from alfie_gr00t.dataset.lerobot import (  # noqa: F401
    FOURCC_CODECS, MODALITY_CONFIG_FILE, TASK_ANNOTATION, check_output, decode_frame, export_episodes,
    export_sessions, modality_config_source, modality_json, raw_size_of)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive WIDTHxHEIGHT, got {text!r}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groot_export_dataset", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s INPUT [INPUT ...] OUT [options]")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="recorded sessions or bags (one or more episodes each, in this order), then the "
                        "output directory")
    parser.add_argument("--topic-map", metavar="YAML", help="read any bag of the robot through this topic map "
                        "(example: config/topic_map.example.yaml); without it the inputs are groot_client sessions")
    parser.add_argument("--task", default="", help="with --topic-map: the task text of every episode (replaces "
                        "the map's task)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="dataset frame rate (default 15, the "
                        "policy's training rate)")
    parser.add_argument("--max-gap", type=float, default=DEFAULT_MAX_GAP_S, metavar="SECONDS",
                        help="refuse an episode where an input (a camera of a bag, the state, the action) stops "
                        "for longer than this (default 1.0; 0 = no limit)")
    parser.add_argument("--fourcc", default="mp4v", choices=sorted(FOURCC_CODECS),
                        help="OpenCV video codec (default mp4v = MPEG-4 Part 2; avc1 where OpenCV has H.264)")
    parser.add_argument("--raw-size", type=parse_size, default=(layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT),
                        help="WIDTHxHEIGHT of session frames recorded with image_encoding raw and no size in "
                        "their format (default 320x280)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (its contents are deleted)")
    return parser


def episodes_from(inputs, args, log) -> list:
    """The resampled episodes of every input, in order."""
    from alfie_gr00t.tools.session import decoded, open_session_bag, read_session

    if not args.topic_map:
        if args.task:
            raise ExportError("--task goes with --topic-map (a session records its own task)")
        episodes = []
        for path in inputs:
            session = read_session(path)
            episode = resample(session, args.fps, args.max_gap)
            episode.warnings[:0] = list(session.warnings)
            episodes.append(episode)
        return episodes
    from alfie_gr00t.dataset import topic_map
    from alfie_gr00t.dataset.bag_episodes import bag_episodes

    tmap = topic_map.load(args.topic_map, args.task)
    episodes = []
    for path in inputs:
        bag = open_session_bag(path)
        episodes += bag_episodes(bag, tmap, lambda b, want: decoded(b, b.warnings, want), fps=args.fps,
                                 max_gap_s=args.max_gap)
    return episodes


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give at least one input (session or bag) and the OUT directory")
    *inputs, out = args.paths
    from alfie_gr00t.bag.reader import BagError
    from alfie_gr00t.tools.session import SessionError

    try:
        if not args.force:
            check_output(out, args.fourcc)
        episodes = episodes_from(inputs, args, print)
        if args.force and pathlib.Path(out).exists():
            shutil.rmtree(out) if pathlib.Path(out).is_dir() else pathlib.Path(out).unlink()
        info = export_episodes(episodes, out, fps=args.fps, fourcc=args.fourcc, raw_size=args.raw_size)
    except (ExportError, SessionError, BagError, OSError) as exc:
        print(f"groot_export_dataset: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {info['total_episodes']} episode(s), {info['total_frames']} frames, "
          f"{info['total_tasks']} task(s), {info['total_videos']} video(s) ({FOURCC_CODECS[args.fourcc]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
