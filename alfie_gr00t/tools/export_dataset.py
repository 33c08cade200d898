"""groot_export_dataset: recorded sessions -> a LeRobot v2.1 dataset that Isaac-GR00T fine-tunes from.

    groot_export_dataset SESSION.mcap [SESSION.mcap ...] OUT [--fps 15] [--fourcc mp4v]

One session file (one activation) becomes one episode, in the order the files are given. The robot's
data is irregular (observations at the request rate, commands at 100 Hz, the measured state at its
topic's rate), so every episode is resampled onto a fixed grid at `--fps`, from the first published
joint command to the last one (the span where the client was ACTIVE and commanding):

    observation.state  the measured 21-D state at t: per dimension the latest finite sample at or before t
    action             the commanded joints (~/joint_commands, by name -> dims 6-20) and base twist
                       (~/cmd_vel -> dims 0-5) at t, latest at or before t, in layout order
    images             per camera the latest frame SENT to the policy (captured) at or before t, decoded;
                       held between observations, so the video repeats frames between requests
    task               the task text of the latest observation at or before t

Grid frames before every one of those has a value are dropped (said in the warnings). The files
(layout of LeRobot v2.1 and Isaac-GR00T's "GR00T LeRobot" flavour):

    meta/info.json  meta/episodes.jsonl  meta/episodes_stats.jsonl  meta/tasks.jsonl
    meta/modality.json  meta/stats.json (Isaac-GR00T's loader requires it)
    data/chunk-000/episode_000000.parquet
    videos/chunk-000/observation.images.<camera>/episode_000000.mp4
    alfie_modality_config.py  (Isaac-GR00T N1.6's --modality-config-path for NEW_EMBODIMENT)

The output is deterministic: the same sessions and options write the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import shutil
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.wire import images

CODEBASE_VERSION = "v2.1"
ROBOT_TYPE = "alfie"
CHUNKS_SIZE = 1000
DEFAULT_FPS = 15.0
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
TASK_ANNOTATION = "annotation.human.task_description"
MODALITY_CONFIG_FILE = "alfie_modality_config.py"
# OpenCV fourcc -> the codec name ffprobe (and info.json's video.codec) reports. The pip OpenCV wheels
# carry no software H.264 encoder; mp4v (MPEG-4 Part 2) is what they write everywhere.
FOURCC_CODECS = {"mp4v": "mpeg4", "avc1": "h264", "vp09": "vp9"}
STAT_QUANTILES = (0.01, 0.99)


class ExportError(ValueError):
    """A session that cannot become an episode; the message says why."""


@dataclass
class Episode:
    """One session resampled onto the grid: row k is at session time `times[k]`."""

    times: np.ndarray  # (T,) float64 session clock, seconds
    state: np.ndarray  # (T, D) float32
    action: np.ndarray  # (T, D) float32
    frame_of: dict[str, np.ndarray]  # camera -> (T,) index into `observations` whose frame plays at k
    tasks: list[str]  # (T,) task text per row
    observations: list  # the session's RecordedObservation list (frames are decoded from these)
    joint_names: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)


def latest_at_or_before(times, values, grid) -> tuple[np.ndarray, np.ndarray]:
    """Per dimension, the latest finite sample recorded at or before each grid time.

    "Latest" is in recording order among the samples whose time is <= t: a reader that forward-fills
    (tools/session.py does) stamps some rows with a header stamp and others with the receive time, so
    two rows of one instant can be a few ns out of order; the one recorded last carries the freshest
    values. Returns (sampled (G, D), valid (G, D)); invalid entries (no finite sample yet) are NaN."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
    grid = np.asarray(grid, dtype=np.float64)
    out = np.full((len(grid), values.shape[1]), np.nan)
    for d in range(values.shape[1]):
        rows = np.flatnonzero(np.isfinite(values[:, d]))  # recording order
        if rows.size == 0:
            continue
        order = np.argsort(times[rows], kind="stable")
        last_recorded = np.maximum.accumulate(rows[order])  # among the k earliest, the one recorded last
        count = np.searchsorted(times[rows][order], grid, side="right")
        ok = count > 0
        out[ok, d] = values[last_recorded[count[ok] - 1], d]
    return out, np.isfinite(out)


def _latest_index(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the latest time at or before each grid time (times sorted), -1 where there is none."""
    return np.searchsorted(times, grid, side="right") - 1


def resample(session, fps: float = DEFAULT_FPS) -> Episode:
    """Resample a Session (tools/session.py) onto a `fps` grid over its commanding span."""
    if not fps > 0 or not math.isfinite(fps):
        raise ExportError(f"--fps must be positive, got {fps}")
    warnings: list[str] = []
    observations = sorted((o for o in session.observations if o.frames), key=lambda o: o.capture_time)
    if not observations:
        raise ExportError(f"{session.path}: no observation with frames (nothing the policy saw)")
    joint_names = tuple(observations[0].joint_names) or layout.JOINT_NAMES
    dim = len(joint_names)

    cmd_times, cmd_names, cmd_positions = session.commands
    cmd_times = np.asarray(cmd_times, dtype=np.float64).reshape(-1)
    if cmd_times.size == 0:
        raise ExportError(f"{session.path}: no ~/joint_commands recorded (the client never commanded, or "
                          "output_mode had no joint_state output): no action to export")
    missing = [n for n in cmd_names if n not in joint_names]
    if missing:
        raise ExportError(f"{session.path}: commanded joints {missing} are not in the layout's joint_names")
    # every source as (times, values (N, dim)) with NaN where it says nothing
    cmd_full = np.full((cmd_times.size, dim), np.nan)
    positions = np.asarray(cmd_positions, dtype=np.float64).reshape(cmd_times.size, len(cmd_names))
    for j, name in enumerate(cmd_names):
        cmd_full[:, joint_names.index(name)] = positions[:, j]
    tw_times, tw_values = session.twists
    tw_times = np.asarray(tw_times, dtype=np.float64).reshape(-1)
    base = range(layout.BASE_DIMS.start, layout.BASE_DIMS.stop)
    tw_full = np.full((tw_times.size, dim), np.nan)
    if tw_times.size:
        tw_full[:, layout.BASE_DIMS] = np.asarray(tw_values, dtype=np.float64).reshape(tw_times.size, 6)
    elif not any(joint_names[d] in cmd_names for d in base):
        warnings.append("no ~/cmd_vel recorded: the base action (dims 0-5) is written as 0")
        tw_times = cmd_times[:1]
        tw_full = np.full((1, dim), np.nan)
        tw_full[:, layout.BASE_DIMS] = 0.0
    st_times, st_values = session.measured_state
    st_times = np.asarray(st_times, dtype=np.float64).reshape(-1)
    if st_times.size == 0:
        raise ExportError(f"{session.path}: no measured state recorded (the state input topic): "
                          "no observation.state to export")

    if np.asarray(st_values).reshape(st_times.size, -1).shape[1] != dim:
        raise ExportError(f"{session.path}: the measured state has "
                          f"{np.asarray(st_values).reshape(st_times.size, -1).shape[1]} dims, the layout {dim}")
    t0, t1 = float(cmd_times.min()), float(cmd_times.max())
    count = int(math.floor((t1 - t0) * fps + 1e-9)) + 1
    grid = t0 + np.arange(count, dtype=np.float64) / fps

    state, state_ok = latest_at_or_before(st_times, st_values, grid)
    action_parts = [latest_at_or_before(t, v, grid) for t, v in ((cmd_times, cmd_full), (tw_times, tw_full))]
    action = np.where(np.isfinite(action_parts[0][0]), action_parts[0][0], action_parts[1][0])
    never = [joint_names[d] for d in range(dim) if not np.isfinite(action[:, d]).any()]
    if never:
        raise ExportError(f"{session.path}: no command ever sets {never}: the action would be incomplete")

    obs_times = np.array([o.capture_time for o in observations], dtype=np.float64)
    obs_index = _latest_index(obs_times, grid)
    cameras = list(observations[0].frames)
    frame_of = {}
    valid = state_ok.all(axis=1) & np.isfinite(action).all(axis=1) & (obs_index >= 0)
    for cam in cameras:
        have = np.array([i for i, o in enumerate(observations) if cam in o.frames], dtype=np.int64)
        pos = _latest_index(obs_times[have], grid)
        frame_of[cam] = np.where(pos >= 0, have[np.maximum(pos, 0)], -1)
        valid &= pos >= 0
    if not valid.any():
        raise ExportError(f"{session.path}: no grid time in the commanding span has state, action and every "
                          "camera's frame: nothing to export")
    first = int(np.argmax(valid))  # once every source has a sample, 'latest at or before' stays valid
    if first:
        warnings.append(f"dropped the first {first} grid frame(s) ({first / fps:.3f} s): not every input "
                        "had a sample yet")
    keep = slice(first, None)
    tasks = [observations[i].task for i in obs_index[keep]]
    return Episode(times=grid[keep], state=state[keep].astype(np.float32), action=action[keep].astype(np.float32),
                   frame_of={c: f[keep] for c, f in frame_of.items()}, tasks=tasks, observations=observations,
                   joint_names=joint_names, warnings=warnings)


def raw_size_of(fmt: str, default: tuple[int, int]) -> tuple[int, int]:
    """(width, height) from a debug image format "rgb8; raw WxH"; `default` when it names none."""
    return images.parse_raw_format(fmt) or default


def decode_frame(data: bytes, raw_size: tuple[int, int], fmt: str = "") -> np.ndarray:
    """A frame as sent -> BGR uint8 (H, W, 3): JPEG bytes, or raw RGB (format "rgb8; raw WxH", else raw_size)."""
    if len(data) >= 2 and data[0] == 0xFF and data[1] == 0xD8:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ExportError("a recorded JPEG frame does not decode")
        return image
    width, height = raw_size_of(fmt, raw_size)
    if len(data) != width * height * 3:
        raise ExportError(f"a recorded frame is neither JPEG nor raw RGB {width}x{height} ({len(data)} bytes; "
                          f"format {fmt!r})")
    return cv2.cvtColor(np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3), cv2.COLOR_RGB2BGR)


def _sample_indices(length: int) -> list[int]:
    """Frames LeRobot v2.1 samples for image stats: ~length**0.75, at least 100 (or all), at most 10000."""
    n = min(length, max(100, min(int(length ** 0.75), 10_000)))
    return sorted(set(np.round(np.linspace(0, length - 1, n)).astype(int).tolist()))


def _image_stats(frames_rgb: list[np.ndarray]) -> dict:
    """LeRobot v2.1 image stats: per channel over the sampled frames, in [0, 1], shaped (3, 1, 1)."""
    stack = np.stack(frames_rgb).astype(np.float64)  # (N, H, W, 3)
    if max(stack.shape[1:3]) >= 300:  # LeRobot's auto-downsample for stats of large frames
        step = int(max(stack.shape[1:3]) / 150)
        stack = stack[:, ::step, ::step]
    def per_channel(values):
        return [[[float(v) / 255.0]] for v in values]
    return {"min": per_channel(stack.min(axis=(0, 1, 2))), "max": per_channel(stack.max(axis=(0, 1, 2))),
            "mean": per_channel(stack.mean(axis=(0, 1, 2))), "std": per_channel(stack.std(axis=(0, 1, 2))),
            "count": [len(frames_rgb)]}


def _vector_stats(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist(),
            "mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist(), "count": [len(values)]}


def _gr00t_stats(values: np.ndarray) -> dict:
    """meta/stats.json entry as Isaac-GR00T's gr00t/data/stats.py writes it (float32 data)."""
    values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    q01, q99 = (np.quantile(values, q, axis=0).tolist() for q in STAT_QUANTILES)
    return {"mean": np.mean(values, axis=0).tolist(), "std": np.std(values, axis=0).tolist(),
            "min": np.min(values, axis=0).tolist(), "max": np.max(values, axis=0).tolist(), "q01": q01, "q99": q99}


def _write_json(path: pathlib.Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_jsonl(path: pathlib.Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def modality_json(cameras, groups=layout.LAYOUT_GROUPS) -> dict:
    """Isaac-GR00T's meta/modality.json: group slices of observation.state/action, videos, the task."""
    slices = {g.name: {"start": g.start, "end": g.stop} for g in groups}
    return {"state": slices, "action": {k: dict(v) for k, v in slices.items()},
            "video": {cam: {"original_key": f"observation.images.{cam}"} for cam in cameras},
            "annotation": {TASK_ANNOTATION.removeprefix("annotation."): {}}}


def modality_config_source(cameras, groups=layout.LAYOUT_GROUPS, horizon: int = layout.ACTION_HORIZON) -> str:
    """Isaac-GR00T N1.6's --modality-config-path file for this dataset (absolute joint targets)."""
    names = [g.name for g in groups]
    absolute = ",\n".join("            ActionConfig(rep=ActionRepresentation.ABSOLUTE, type=ActionType.NON_EEF, "
                          "format=ActionFormat.DEFAULT)" for _ in names)
    return f'''"""Alfie's modality config for Isaac-GR00T N1.6 fine-tuning (written by groot_export_dataset).

launch_finetune.py --embodiment-tag NEW_EMBODIMENT --modality-config-path <this file> imports it.
Actions are absolute joint targets and base velocities (what the client commanded), as the policy
served by groot_server returns them.
"""

from gr00t.configs.data.embodiment_configs import register_modality_config
from gr00t.data.embodiment_tags import EmbodimentTag
from gr00t.data.types import ActionConfig, ActionFormat, ActionRepresentation, ActionType, ModalityConfig

alfie_config = {{
    "video": ModalityConfig(delta_indices=[0], modality_keys={list(cameras)!r}),
    "state": ModalityConfig(delta_indices=[0], modality_keys={names!r}),
    "action": ModalityConfig(
        delta_indices=list(range(0, {int(horizon)})),
        modality_keys={names!r},
        action_configs=[
{absolute},
        ],
    ),
    "language": ModalityConfig(delta_indices=[0], modality_keys=[{TASK_ANNOTATION!r}]),
}}

register_modality_config(alfie_config, embodiment_tag=EmbodimentTag.NEW_EMBODIMENT)
'''


def _write_camera(path: pathlib.Path, ep: Episode, cam: str, sampled: set, fps: float, fourcc: str,
                  raw_size: tuple[int, int]) -> tuple[tuple, list[np.ndarray]]:
    """Write one camera's mp4 for an episode: row k shows the frame of observation ep.frame_of[cam][k].

    Returns the frame shape and the RGB frames at the `sampled` rows (for the image stats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer, shape, held, image = None, None, None, None
    stat_frames = []
    try:
        for k, i in enumerate(ep.frame_of[cam].tolist()):
            if i != held:  # decode each sent frame once; it is held until the next observation
                obs = ep.observations[i]
                image, held = decode_frame(obs.frames[cam], raw_size, getattr(obs, "formats", {}).get(cam, "")), i
                if shape is not None and image.shape != shape:
                    raise ExportError(f"camera {cam!r}: frames of different sizes {shape} and {image.shape}")
            if writer is None:
                shape = image.shape
                height, width = image.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
                if not writer.isOpened():
                    raise ExportError(f"OpenCV cannot write fourcc {fourcc!r} to mp4 on this machine "
                                      f"(try --fourcc mp4v)")
            writer.write(image)
            if k in sampled:
                stat_frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    finally:
        if writer is not None:
            writer.release()
    return shape, stat_frames


def export_sessions(sessions, out_dir, *, fps: float = DEFAULT_FPS, fourcc: str = "mp4v",
                    raw_size: tuple[int, int] = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT),
                    groups=layout.LAYOUT_GROUPS, log=print) -> dict:
    """Write the Sessions as a LeRobot v2.1 dataset into out_dir (created; must be empty or absent).

    Returns the info.json dict. Imports pyarrow here so the package imports without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fourcc not in FOURCC_CODECS:
        raise ExportError(f"--fourcc must be one of {sorted(FOURCC_CODECS)}, got {fourcc!r}")
    out = pathlib.Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty: export into a new directory")
    episodes = []
    for session in sessions:
        episode = resample(session, fps)
        for w in list(getattr(session, "warnings", [])) + episode.warnings:
            log(f"{session.path}: {w}")
        episodes.append(episode)
    if not episodes:
        raise ExportError("no session given")
    cameras = list(episodes[0].frame_of)
    joint_names = episodes[0].joint_names
    for ep, session in zip(episodes, sessions):
        if list(ep.frame_of) != cameras or ep.joint_names != joint_names:
            raise ExportError(f"{session.path}: cameras {list(ep.frame_of)} / joints differ from the first "
                              f"session's {cameras}: one dataset needs one layout")
    if groups[-1].stop != len(joint_names):
        raise ExportError(f"layout groups cover {groups[-1].stop} dims, the joint names {len(joint_names)}")

    task_index: dict[str, int] = {}
    for ep in episodes:
        for task in ep.tasks:
            task_index.setdefault(task, len(task_index))

    out.mkdir(parents=True, exist_ok=True)
    frame_shapes: dict[str, tuple] = {}
    episode_rows, stats_rows = [], []
    all_state, all_action, all_time = [], [], []
    global_index = 0
    for e, ep in enumerate(episodes):
        n = len(ep)
        chunk = e // CHUNKS_SIZE
        frame_index = np.arange(n, dtype=np.int64)
        timestamps = (frame_index / fps).astype(np.float32)
        tasks = np.array([task_index[t] for t in ep.tasks], dtype=np.int64)
        index = global_index + frame_index
        vector = pa.list_(pa.float32(), ep.state.shape[1])  # what HF datasets writes for Sequence(length=21)
        columns = {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(ep.state.reshape(-1)), type=vector),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(ep.action.reshape(-1)), type=vector),
            "timestamp": pa.array(timestamps, pa.float32()),
            "frame_index": pa.array(frame_index, pa.int64()),
            "episode_index": pa.array(np.full(n, e, dtype=np.int64), pa.int64()),
            "index": pa.array(index, pa.int64()),
            "task_index": pa.array(tasks, pa.int64()),
            TASK_ANNOTATION: pa.array(tasks, pa.int64()),
        }
        data_path = out / DATA_PATH.format(episode_chunk=chunk, episode_index=e)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), data_path)

        stats = {"observation.state": _vector_stats(ep.state), "action": _vector_stats(ep.action),
                 "timestamp": _vector_stats(timestamps), "frame_index": _vector_stats(frame_index),
                 "episode_index": _vector_stats(np.full(n, e)), "index": _vector_stats(index),
                 "task_index": _vector_stats(tasks), TASK_ANNOTATION: _vector_stats(tasks)}
        sampled = set(_sample_indices(n))
        for cam in cameras:
            key = f"observation.images.{cam}"
            video_path = out / VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=e)
            shape, stat_frames = _write_camera(video_path, ep, cam, sampled, fps, fourcc, raw_size)
            if frame_shapes.setdefault(cam, shape) != shape:
                raise ExportError(f"camera {cam!r}: frames of {shape} in episode {e}, of {frame_shapes[cam]} "
                                  "before: one video key needs one size")
            stats[key] = _image_stats(stat_frames)
        episode_rows.append({"episode_index": e, "tasks": list(dict.fromkeys(ep.tasks)), "length": n})
        stats_rows.append({"episode_index": e, "stats": stats})
        all_state.append(ep.state)
        all_action.append(ep.action)
        all_time.append(timestamps)
        global_index += n
        log(f"episode {e}: {n} frames ({n / fps:.2f} s at {fps:g} fps), {len(episode_rows[-1]['tasks'])} task(s)")

    names = list(joint_names)
    features = {
        **{f"observation.images.{cam}": {
            "dtype": "video", "shape": [frame_shapes[cam][0], frame_shapes[cam][1], 3], "names": ["height", "width", "channels"],
            "info": {"video.fps": float(fps), "video.height": frame_shapes[cam][0],
                     "video.width": frame_shapes[cam][1], "video.channels": 3,
                     "video.codec": FOURCC_CODECS[fourcc], "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "has_audio": False}} for cam in cameras},
        "observation.state": {"dtype": "float32", "shape": [len(names)], "names": names},
        "action": {"dtype": "float32", "shape": [len(names)], "names": names},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
        TASK_ANNOTATION: {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": ROBOT_TYPE,
        "total_episodes": len(episodes), "total_frames": global_index, "total_tasks": len(task_index),
        "total_videos": len(episodes) * len(cameras), "total_chunks": math.ceil(len(episodes) / CHUNKS_SIZE),
        "chunks_size": CHUNKS_SIZE, "fps": int(fps) if float(fps).is_integer() else float(fps),
        "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
        "features": features,
    }
    _write_json(out / "meta" / "info.json", info)
    _write_jsonl(out / "meta" / "episodes.jsonl", episode_rows)
    _write_jsonl(out / "meta" / "episodes_stats.jsonl", stats_rows)
    _write_jsonl(out / "meta" / "tasks.jsonl", [{"task_index": i, "task": t} for t, i in task_index.items()])
    _write_json(out / "meta" / "modality.json", modality_json(cameras, groups))
    _write_json(out / "meta" / "stats.json", {
        "observation.state": _gr00t_stats(np.concatenate(all_state)),
        "action": _gr00t_stats(np.concatenate(all_action)),
        "timestamp": _gr00t_stats(np.concatenate(all_time))})
    (out / MODALITY_CONFIG_FILE).write_text(modality_config_source(cameras, groups), encoding="utf-8")
    return info


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive WIDTHxHEIGHT, got {text!r}")
    return width, height


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_export_dataset", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s SESSION.mcap [SESSION.mcap ...] OUT [options]")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="recorded session files (one episode each, in this order), then the output directory")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="dataset frame rate (default 15, the "
                        "policy's training rate)")
    parser.add_argument("--fourcc", default="mp4v", choices=sorted(FOURCC_CODECS),
                        help="OpenCV video codec (default mp4v = MPEG-4 Part 2; avc1 where OpenCV has H.264)")
    parser.add_argument("--raw-size", type=parse_size, default=(layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT),
                        help="WIDTHxHEIGHT of frames recorded with image_encoding raw (default 320x280)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give at least one SESSION.mcap and the OUT directory")
    *inputs, out = args.paths
    from alfie_gr00t.tools.session import SessionError, read_session

    try:
        if args.force and pathlib.Path(out).exists():
            shutil.rmtree(out)
        sessions = [read_session(p) for p in inputs]
        info = export_sessions(sessions, out, fps=args.fps, fourcc=args.fourcc, raw_size=args.raw_size)
    except (ExportError, SessionError, OSError) as exc:
        print(f"groot_export_dataset: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {info['total_episodes']} episode(s), {info['total_frames']} frames, "
          f"{info['total_tasks']} task(s), {info['total_videos']} video(s) ({FOURCC_CODECS[args.fourcc]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
