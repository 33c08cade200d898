"""Write resampled episodes as a LeRobot v2.1 dataset in the "GR00T LeRobot" layout Isaac-GR00T N1.6
fine-tunes from. ROS-free (OpenCV, pyarrow).

    meta/info.json  meta/episodes.jsonl  meta/episodes_stats.jsonl  meta/tasks.jsonl
    meta/modality.json  meta/stats.json (Isaac-GR00T's loader requires it)
    data/chunk-000/episode_000000.parquet
    videos/chunk-000/observation.images.<camera>/episode_000000.mp4
    alfie_modality_config.py  (Isaac-GR00T N1.6's --modality-config-path for NEW_EMBODIMENT)

The output is deterministic: the same episodes and options write the same bytes.
"""

from __future__ import annotations

import json
import math
import pathlib

import cv2
import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.dataset.episode import DEFAULT_FPS, DEFAULT_MAX_GAP_S, Episode, ExportError, resample  # noqa: F401
from alfie_gr00t.wire import images

CODEBASE_VERSION = "v2.1"
ROBOT_TYPE = "alfie"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
TASK_ANNOTATION = "annotation.human.task_description"
MODALITY_CONFIG_FILE = "alfie_modality_config.py"
# OpenCV fourcc -> the codec name ffprobe (and info.json's video.codec) reports. The pip OpenCV wheels
# carry no software H.264 encoder; mp4v (MPEG-4 Part 2) is what they write everywhere.
FOURCC_CODECS = {"mp4v": "mpeg4", "avc1": "h264", "vp09": "vp9"}
STAT_QUANTILES = (0.01, 0.99)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def raw_size_of(fmt: str, default: tuple[int, int]) -> tuple[int, int]:
    """(width, height) from a debug image format "rgb8; raw WxH"; `default` when it names none."""
    return images.parse_raw_format(fmt) or default


def decode_frame(data: bytes, raw_size: tuple[int, int], fmt: str = "") -> np.ndarray:
    """A frame -> BGR uint8 (H, W, 3): JPEG or PNG bytes, or raw RGB (format "rgb8; raw WxH", else raw_size)."""
    if data[:2] == b"\xff\xd8" or data[:8] == PNG_MAGIC:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ExportError(f"a recorded {'PNG' if data[:8] == PNG_MAGIC else 'JPEG'} frame does not decode")
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
    """Write one camera's mp4 for an episode: row k shows the frame ep.frames[cam][ep.frame_of[cam][k]].

    Returns the frame shape and the RGB frames at the `sampled` rows (for the image stats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer, shape, held, image = None, None, None, None
    stat_frames = []
    try:
        for k, i in enumerate(ep.frame_of[cam].tolist()):
            if i != held:  # decode each frame once; it is held until the next one
                data, fmt = ep.frames[cam][i]
                image, held = decode_frame(data, raw_size, fmt), i
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


def export_sessions(sessions, out_dir, *, fps: float = DEFAULT_FPS, max_gap_s: float = DEFAULT_MAX_GAP_S,
                    log=print, **options) -> dict:
    """Our recorded Sessions (tools/session.py), one episode each, as a dataset (export_episodes)."""
    check_output(out_dir, options.get("fourcc", "mp4v"))
    episodes = []
    for session in sessions:
        episode = resample(session, fps, max_gap_s)
        episode.warnings[:0] = list(getattr(session, "warnings", []))
        episodes.append(episode)
    return export_episodes(episodes, out_dir, fps=fps, log=log, **options)


def check_output(out_dir, fourcc: str = "mp4v") -> None:
    if fourcc not in FOURCC_CODECS:
        raise ExportError(f"--fourcc must be one of {sorted(FOURCC_CODECS)}, got {fourcc!r}")
    out = pathlib.Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not empty: export into a new directory, or pass --force to "
                          f"replace it (its contents are deleted)")


def export_episodes(episodes, out_dir, *, fps: float = DEFAULT_FPS, fourcc: str = "mp4v",
                    raw_size: tuple[int, int] = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT),
                    groups=layout.LAYOUT_GROUPS, log=print) -> dict:
    """Write resampled Episodes as a LeRobot v2.1 dataset into out_dir (created; must be empty or absent).

    Returns the info.json dict. Imports pyarrow here so the package imports without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_output(out_dir, fourcc)
    out = pathlib.Path(out_dir)
    if not episodes:
        raise ExportError("no episode given")
    for ep in episodes:
        for w in ep.warnings:
            log(f"{ep.source}: {w}")
    cameras = list(episodes[0].frame_of)
    joint_names = episodes[0].joint_names
    for ep in episodes:
        if list(ep.frame_of) != cameras or ep.joint_names != joint_names:
            raise ExportError(f"{ep.source}: cameras {list(ep.frame_of)} / joints differ from the first "
                              f"episode's {cameras}: one dataset needs one layout")
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
