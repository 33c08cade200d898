"""One episode's inputs resampled onto a fixed grid at the training rate. ROS-free.

The robot's data is irregular (frames at the camera or request rate, commands at 100 Hz, the measured
state at its topic's rate). `Streams` holds one episode's inputs on one clock, each as (times, values)
with NaN where a message says nothing about a dimension; `resample_streams` puts them on a grid at
`fps` over the episode's span, taking at each grid time t per dimension the latest sample at or before
t (frames and tasks likewise), drops the first grid frames until every input has a sample, and
refuses what cannot be an episode, saying why: no frames, a dimension nothing ever sets, an input
that stops for longer than `max_gap_s` inside the span.

`resample(session, fps)` is the same for a session recorded by groot_client (tools/session.py): the
span is its commanding span, the action what the client commanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t import layout

DEFAULT_FPS = 15.0
DEFAULT_MAX_GAP_S = 1.0
# "At or before t" allows this much: times in seconds since 1970 as float64 are only good to ~0.24 us,
# so a sample stamped exactly at a grid time must not flip to "after" by rounding.
TIME_EPS_S = 1e-6


class ExportError(ValueError):
    """Input that cannot become an episode (or a dataset); the message says why."""


@dataclass
class Episode:
    """Inputs resampled onto the grid: row k is at time `times[k]` of the source's clock."""

    times: np.ndarray  # (T,) float64 seconds
    state: np.ndarray  # (T, D) float32
    action: np.ndarray  # (T, D) float32
    frame_of: dict  # camera -> (T,) index into frames[camera] of the frame shown at row k
    tasks: list  # (T,) task text per row
    frames: dict  # camera -> list of (bytes, format): JPEG/PNG bytes, or raw "rgb8; raw WxH"
    joint_names: tuple
    warnings: list = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class Streams:
    """One episode's inputs on one clock (seconds). `state` and `action` are lists of (times (N,),
    values (N, D)) parts, NaN where a part says nothing (joints by name from one topic, the base from
    another); `action` None takes the next grid row's state as the action (demos without commands)."""

    source: str
    joint_names: tuple
    span: tuple  # (t0, t1) of the grid
    state: list
    action: list | None
    frames: dict  # camera -> (times (M,), [(bytes, format), ...])
    task_times: np.ndarray
    task_texts: list
    gaps: dict = field(default_factory=dict)  # input name -> sample times checked against max_gap_s
    warnings: list = field(default_factory=list)


def latest_at_or_before(times, values, grid) -> tuple[np.ndarray, np.ndarray]:
    """Per dimension, the latest finite sample recorded at or before each grid time.

    "Latest" is in recording order among the samples whose time is <= t: a reader that forward-fills
    (tools/session.py does) stamps some rows with a header stamp and others with the receive time, so
    two rows of one instant can be a few ns out of order; the one recorded last carries the freshest
    values. Returns (sampled (G, D), valid (G, D)); invalid entries (no finite sample yet) are NaN."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
    grid = np.asarray(grid, dtype=np.float64) + TIME_EPS_S
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


def latest_index(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the latest time at or before each grid time (times sorted), -1 where there is none."""
    return np.searchsorted(times, np.asarray(grid, dtype=np.float64) + TIME_EPS_S, side="right") - 1


def _combine(parts, grid, dim: int) -> np.ndarray:
    """The parts sampled on the grid, the first part that has a value winning per dimension."""
    out = np.full((len(grid), dim), np.nan)
    for times, values in parts:
        sampled, _ = latest_at_or_before(times, np.asarray(values, dtype=np.float64).reshape(len(times), dim), grid)
        out = np.where(np.isfinite(out), out, sampled)
    return out


def _check_gaps(streams: Streams, lo: float, hi: float, max_gap_s: float) -> None:
    if not max_gap_s or max_gap_s <= 0:
        return
    for name, times in streams.gaps.items():
        times = np.sort(np.asarray(times, dtype=np.float64))
        inside = times[(times >= lo) & (times <= hi)]
        edges = np.concatenate([[lo], inside, [hi]]) if inside.size else np.array([lo, hi])
        before = times[times < lo]
        if before.size:  # the sample held at the start counts from when it came
            edges[0] = before[-1]
        gaps = np.diff(edges)
        k = int(np.argmax(gaps))
        if gaps[k] > max_gap_s:
            raise ExportError(f"{streams.source}: {name} has a gap of {gaps[k]:.2f} s (from "
                              f"{edges[k] - lo:+.2f} s into the episode), longer than --max-gap {max_gap_s:g} s: "
                              f"the data there would be stale; cut the bag there or raise --max-gap")


def resample_streams(streams: Streams, fps: float = DEFAULT_FPS, max_gap_s: float = DEFAULT_MAX_GAP_S) -> Episode:
    if not fps > 0 or not math.isfinite(fps):
        raise ExportError(f"--fps must be positive, got {fps}")
    names, dim = tuple(streams.joint_names), len(streams.joint_names)
    warnings = list(streams.warnings)
    if not streams.frames or any(len(t) == 0 for t, _ in streams.frames.values()):
        empty = [c for c, (t, _) in streams.frames.items() if len(t) == 0] or "any camera"
        raise ExportError(f"{streams.source}: no frames from {empty}: nothing the policy would see")
    t0, t1 = streams.span
    if not t1 >= t0:
        raise ExportError(f"{streams.source}: the episode's span is empty")
    count = int(math.floor((t1 - t0) * fps + 1e-9)) + 1
    grid = t0 + np.arange(count, dtype=np.float64) / fps
    state = _combine(streams.state, grid, dim)
    if streams.action is None:  # the next state is the action (demos recorded without commands)
        action = np.vstack([state[1:], np.full((1, dim), np.nan)])
    else:
        action = _combine(streams.action, grid, dim)
    for what, values in (("state", state), ("action", action)):
        never = [names[d] for d in range(dim) if not np.isfinite(values[:, d]).any()]
        if never:
            raise ExportError(f"{streams.source}: no {what} ever sets {never}: the {what} would be incomplete")
    valid = np.isfinite(state).all(axis=1) & np.isfinite(action).all(axis=1)
    frame_of = {}
    for cam, (times, _) in streams.frames.items():
        frame_of[cam] = latest_index(np.asarray(times, dtype=np.float64), grid)
        valid &= frame_of[cam] >= 0
    task_index = latest_index(np.asarray(streams.task_times, dtype=np.float64), grid)
    valid &= task_index >= 0
    if not valid.any():
        raise ExportError(f"{streams.source}: no grid time has state, action, every camera's frame and a task: "
                          "nothing to export")
    first = int(np.argmax(valid))
    last = len(valid) - int(np.argmax(valid[::-1])) - 1
    if first:
        warnings.append(f"dropped the first {first} grid frame(s) ({first / fps:.3f} s): not every input "
                        "had a sample yet")
    if last < len(valid) - 1:
        warnings.append(f"dropped the last {len(valid) - 1 - last} grid frame(s): no action after them "
                        "(the next state is the action)")
    if not valid[first:last + 1].all():
        raise ExportError(f"{streams.source}: an input lost its value inside the episode")
    keep = slice(first, last + 1)
    _check_gaps(streams, float(grid[first]), float(grid[last]), max_gap_s)
    return Episode(times=grid[keep], state=state[keep].astype(np.float32), action=action[keep].astype(np.float32),
                   frame_of={c: f[keep] for c, f in frame_of.items()},
                   tasks=[streams.task_texts[i] for i in task_index[keep]],
                   frames={c: list(f) for c, (_, f) in streams.frames.items()}, joint_names=names,
                   warnings=warnings, source=streams.source)


def session_streams(session) -> Streams:
    """A session recorded by groot_client as Streams: the frames sent to the policy, the measured state,
    what the client commanded (~/joint_commands by name, ~/cmd_vel as the base), over its commanding span."""
    observations = sorted((o for o in session.observations if o.frames), key=lambda o: o.capture_time)
    if not observations:
        hint = ""
        if not any("/debug/image/" in t for t in getattr(session, "topics", {})):
            hint = ("; it is not a groot_client session (no .../debug/image topic): a bag recorded with "
                    "`ros2 bag record` goes through a topic map (--topic-map config/topic_map.example.yaml)")
        raise ExportError(f"{session.path}: no observation with frames (nothing the policy saw){hint}")
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
    cmd_full = np.full((cmd_times.size, dim), np.nan)
    positions = np.asarray(cmd_positions, dtype=np.float64).reshape(cmd_times.size, len(cmd_names))
    for j, name in enumerate(cmd_names):
        cmd_full[:, joint_names.index(name)] = positions[:, j]
    warnings = []
    tw_times, tw_values = session.twists
    tw_times = np.asarray(tw_times, dtype=np.float64).reshape(-1)
    tw_full = np.full((tw_times.size, dim), np.nan)
    if tw_times.size:
        tw_full[:, layout.BASE_DIMS] = np.asarray(tw_values, dtype=np.float64).reshape(tw_times.size, 6)
    elif not any(joint_names[d] in cmd_names for d in range(layout.BASE_DIMS.start, layout.BASE_DIMS.stop)):
        warnings.append("no ~/cmd_vel recorded: the base action (dims 0-5) is written as 0")
        tw_times = cmd_times[:1]
        tw_full = np.full((1, dim), np.nan)
        tw_full[:, layout.BASE_DIMS] = 0.0
    st_times, st_values = session.measured_state
    st_times = np.asarray(st_times, dtype=np.float64).reshape(-1)
    if st_times.size == 0:
        raise ExportError(f"{session.path}: no measured state recorded (the state input topic): "
                          "no observation.state to export")
    st_values = np.asarray(st_values, dtype=np.float64).reshape(st_times.size, -1)
    if st_values.shape[1] != dim:
        raise ExportError(f"{session.path}: the measured state has {st_values.shape[1]} dims, the layout {dim}")
    obs_times = np.array([o.capture_time for o in observations], dtype=np.float64)
    frames = {}
    for cam in observations[0].frames:
        have = [o for o in observations if cam in o.frames]
        frames[cam] = (np.array([o.capture_time for o in have], dtype=np.float64),
                       [(o.frames[cam], getattr(o, "formats", {}).get(cam, "")) for o in have])
    return Streams(source=session.path, joint_names=joint_names, span=(float(cmd_times.min()), float(cmd_times.max())),
                   state=[(st_times, st_values)], action=[(cmd_times, cmd_full), (tw_times, tw_full)], frames=frames,
                   task_times=obs_times, task_texts=[o.task for o in observations],
                   gaps={"the measured state": st_times, "~/joint_commands": cmd_times}, warnings=warnings)


def resample(session, fps: float = DEFAULT_FPS, max_gap_s: float = DEFAULT_MAX_GAP_S) -> Episode:
    """Resample a Session (tools/session.py) onto a `fps` grid over its commanding span."""
    if not fps > 0 or not math.isfinite(fps):
        raise ExportError(f"--fps must be positive, got {fps}")
    return resample_streams(session_streams(session), fps, max_gap_s)
