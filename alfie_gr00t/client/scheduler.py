"""Turn action chunks from the policy into a smooth command stream (docs/design.md#latency-model).

The policy answers with chunks of steps at the training rate (15 Hz); the robot wants a
command every control tick (100 Hz). The scheduler sits in between:

- plan time: the plan's clock runs only while the robot follows a plan, i.e. while a chunk
  is playing (not before the first chunk, not while the queue is dry, not after the
  watchdog expired or a reset). A new chunk is aligned by the plan time that elapsed since
  its observation was captured: a robot that held still since capture starts the chunk at
  step 0; one that kept moving skips exactly the steps it moved (0.2 s of motion at 15 Hz
  skips 3 steps), whatever the wall time. A chunk is stale only when the robot moved past
  all of its steps. So a policy slower than its chunk runs synchronously: the chunk plays,
  the robot holds while the next one is computed, and that one starts at step 0;
- once queued, a chunk plays on the wall clock (it is playing, so plan time = wall time):
  each step owns one step period, between steps the command is interpolated linearly, the
  last step is held for its period, and after that the queue is dry (None, never
  extrapolated);
- a new chunk that arrives while another is playing fades in over `crossfade_steps`
  steps, so the switch has no jump;
- splice (real-time chunking): a chunk whose first `frozen_steps` steps are known to equal what
  is playing on the chunk's own step grid (the server froze the prefix the request carried, and
  the worker checked it) takes over without a crossfade at its next step (within one step
  period), when that step is still a frozen one: there old and new are at the same point, so
  the switch moves nothing; up to the end of the frozen steps both are the same motion, after
  them the new chunk continues its own inpainted steps. One that arrives after the robot passed
  its frozen steps fades in as any other chunk (`splices_late`);
- `preview(times)` reads the schedule ahead without changing it: the prefix a request
  carries for real-time chunking (rows stop where the queue would run dry: those steps
  are exactly the ones the robot executes before the reply, so the ones the new chunk skips);
- without a fresh chunk for `watchdog_timeout_s` (a backstop: steps are time-aligned, so
  a chunk runs dry on its own) it stops commanding (None) and the caller holds.

Plan time is kept as a few wall-time segments during which something played, updated only in
`add_chunk`/`reset`; `command()` does no more work than before.

When to ask for the next chunk is `latency.RefillPolicy`'s decision, from `remaining_steps`.

It is ROS-free and thread-safe: one thread adds chunks, a timer reads commands.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.settings import same_as

# Layers kept for overlapping crossfades. Only reached when chunks arrive faster than
# one crossfade; dropping the oldest then costs a small step, which safety rate-limits.
_MAX_LAYERS = 8
# Tolerance when flooring elapsed steps, so 0.2 s at 15 Hz counts as 3 steps, not 2.
_STEP_EPS = 1e-9
# A clock reading this far before the newest chunk's arrival means the clock jumped back.
_CLOCK_BACK_TOLERANCE_S = 0.1
# Closed plan-time segments kept: each is at least one chunk's play, far more than the oldest
# capture a reply can carry (max observation age + request timeout).
_MAX_SEGMENTS = 256


@dataclass(frozen=True)
class SchedulerConfig:
    """How chunks are played: the groot_client parameters the scheduler reads (defaults and meaning from
    ClientConfig, docs/design.md#the-21-d-layout)."""

    action_step_hz: float = same_as(ClientConfig, "action_step_hz")
    action_horizon: int = same_as(ClientConfig, "action_horizon")
    crossfade_steps: int = same_as(ClientConfig, "crossfade_steps")
    ema_alpha: float = same_as(ClientConfig, "ema_alpha")
    watchdog_timeout_s: float = same_as(ClientConfig, "watchdog_timeout_s")
    action_dim: int = same_as(ClientConfig, "action_dim")

    def __post_init__(self):
        if not (math.isfinite(self.action_step_hz) and self.action_step_hz > 0):
            raise ValueError(f"action_step_hz must be a positive number, got {self.action_step_hz}")
        if int(self.action_horizon) != self.action_horizon or self.action_horizon < 1:
            raise ValueError(f"action_horizon must be an integer >= 1, got {self.action_horizon}")
        if int(self.crossfade_steps) != self.crossfade_steps or self.crossfade_steps < 0:
            raise ValueError(f"crossfade_steps must be an integer >= 0, got {self.crossfade_steps}")
        if not (0 < self.ema_alpha <= 1):
            raise ValueError(f"ema_alpha must be in (0, 1] (1 = no smoothing), got {self.ema_alpha}")
        if not (math.isfinite(self.watchdog_timeout_s) and self.watchdog_timeout_s > 0):
            raise ValueError(f"watchdog_timeout_s must be a positive number, got {self.watchdog_timeout_s}")
        if int(self.action_dim) != self.action_dim or self.action_dim < 1:
            raise ValueError(f"action_dim must be an integer >= 1, got {self.action_dim}")


class _Layer:
    """One chunk on the time line, fading in over [fade_start, fade_end]."""

    __slots__ = ("actions", "origin", "offset", "fade_start", "fade_end")

    def __init__(self, actions: np.ndarray, origin: float, offset: int, fade_start: float, fade_end: float):
        self.actions = actions  # kept steps only
        self.origin = origin  # clock time of the chunk's original step 0
        self.offset = offset  # steps dropped from the front
        self.fade_start = fade_start
        self.fade_end = fade_end

    def position(self, t: float, hz: float) -> float:
        """Steps into the kept actions at time t (0 = first kept step)."""
        return (t - self.origin) * hz - self.offset

    def weight(self, t: float) -> float:
        if t >= self.fade_end:
            return 1.0
        if t <= self.fade_start:
            return 0.0
        return (t - self.fade_start) / (self.fade_end - self.fade_start)

    def sample(self, p: float, out: np.ndarray) -> None:
        """Write the interpolated action at position p into out (held at both ends)."""
        last = len(self.actions) - 1
        if p <= 0.0:
            out[:] = self.actions[0]
        elif p >= last:
            out[:] = self.actions[last]
        else:
            i = int(p)
            np.subtract(self.actions[i + 1], self.actions[i], out=out)
            out *= p - i
            out += self.actions[i]


class ActionScheduler:
    """Plays action chunks on a clock; `command()` is cheap enough for a 100 Hz timer."""

    def __init__(self, config: SchedulerConfig, clock: Callable[[], float] = time.monotonic):
        self._config = config
        self._clock = clock
        self._hz = float(config.action_step_hz)
        self._fade_s = config.crossfade_steps / self._hz
        self._lock = threading.Lock()
        self._layers: list[_Layer] = []
        self._last_fresh: float | None = None
        self._ema: np.ndarray | None = None
        self._sample = np.empty(config.action_dim, dtype=np.float64)
        self._blend = np.empty(config.action_dim, dtype=np.float64)
        self._chunks_received = 0
        self._chunks_stale = 0
        self._steps_dropped_total = 0
        self._splices = 0
        self._splices_late = 0
        # Plan time (s the robot spent playing a chunk): closed segments (wall start, wall end, plan
        # time at start) and the open one (wall start, plan time at start); it ends at _play_until().
        self._segments: deque[tuple[float, float, float]] = deque(maxlen=_MAX_SEGMENTS)
        self._open: tuple[float, float] | None = None
        self._on_chunk: Callable | None = None
        self._on_command: Callable | None = None

    def watch(self, on_chunk: Callable | None = None, on_command: Callable | None = None) -> None:
        """Observers for tools (the benchmarks): `on_chunk(t, actions, observation_time, dropped,
        was_playing)` after each `add_chunk` (`was_playing`: another chunk was playing when it came),
        `on_command(t, out)` after each `command`. They run on the caller's thread: keep them quick."""
        self._on_chunk = on_chunk or self._on_chunk
        self._on_command = on_command or self._on_command

    @property
    def config(self) -> SchedulerConfig:
        return self._config

    @property
    def chunks_received(self) -> int:
        """Valid chunks passed to add_chunk (stale ones included)."""
        return self._chunks_received

    @property
    def chunks_stale(self) -> int:
        """Chunks ignored because all their steps had elapsed on arrival."""
        return self._chunks_stale

    @property
    def steps_dropped_total(self) -> int:
        """Steps skipped for latency compensation, over all chunks."""
        return self._steps_dropped_total

    @property
    def splices(self) -> int:
        """Chunks that took over without a crossfade inside their frozen steps (real-time chunking)."""
        return self._splices

    @property
    def splices_late(self) -> int:
        """Chunks with frozen steps that arrived after the robot had passed them, and were crossfaded."""
        return self._splices_late

    def add_chunk(self, actions: np.ndarray, observation_time: float, frozen_steps: int = 0) -> int:
        observer = self._on_chunk
        if observer is None:
            return self._add_chunk(actions, observation_time, frozen_steps)
        t = self._clock()
        was_playing = self.remaining_steps(t) > 0
        dropped = self._add_chunk(actions, observation_time, frozen_steps)
        observer(t, actions, observation_time, dropped, was_playing)
        return dropped

    def _add_chunk(self, actions: np.ndarray, observation_time: float, frozen_steps: int = 0) -> int:
        """Queue a chunk computed from an observation captured at `observation_time` (clock time).

        The steps the robot executed since then (plan time, not wall time: a held robot executed
        none) are dropped; the number dropped is returned. A chunk whose every step was executed
        is ignored and does not feed the watchdog. If another chunk is still playing, the new one
        fades in over `crossfade_steps` steps, unless `frozen_steps` > 0 says its first steps equal
        the schedule on the observation's step grid (checked by the caller) and the robot has not
        yet passed the last of them: then it replaces the schedule at its next step, where both are
        the same point (a splice). The array is copied (callers may reuse buffers).
        """
        chunk = self._validated(actions, observation_time)
        now = self._clock()
        with self._lock:
            self._chunks_received += 1
            # An observation stamped in the future (clock skew) starts now.
            capture = min(float(observation_time), now)
            moved = max(0.0, self._plan_at(now) - self._plan_at(capture))
            dropped = int(math.floor(moved * self._hz + _STEP_EPS))
            if dropped >= len(chunk):
                self._chunks_stale += 1
                self._steps_dropped_total += len(chunk)
                return len(chunk)
            self._steps_dropped_total += dropped
            kept = chunk[dropped:].copy()
            # On the wall clock from now on: step k of the chunk plays at now - moved + k / hz.
            origin = now - moved
            playing = self._playing(now)
            if not playing:
                self._close_segment(now)
            splice = playing and frozen_steps > 0 and moved * self._hz <= frozen_steps - 1 + _STEP_EPS
            if playing and frozen_steps > 0:
                if splice:
                    self._splices += 1
                else:
                    self._splices_late += 1
            if splice:  # a step switch at the chunk's next step (origin + k / hz), none of it faded
                switch = origin + math.ceil(moved * self._hz - _STEP_EPS) / self._hz
                self._push(_Layer(kept, origin, dropped, switch, switch), now)
            elif self._fade_s > 0 and playing:
                self._push(_Layer(kept, origin, dropped, now, now + self._fade_s), now)
            else:
                self._layers = [_Layer(kept, origin, dropped, -math.inf, -math.inf)]
            self._last_fresh = now
            if self._open is None:
                self._open = (now, self._plan_total())
            return dropped

    def newest_start(self) -> float | None:
        """Clock time at which the newest chunk's first kept step plays (None: nothing queued)."""
        with self._lock:
            if not self._layers:
                return None
            newest = self._layers[-1]
            return newest.origin + newest.offset / self._hz

    def plan_time(self, now: float | None = None) -> float:
        """Seconds the robot spent playing chunks up to `now` (default: the clock)."""
        with self._lock:
            return self._plan_at(self._clock() if now is None else now)

    def command(self, now: float | None = None) -> np.ndarray | None:
        observer = self._on_command
        if observer is None:
            return self._command(now)
        t = self._clock() if now is None else now
        out = self._command(t)
        observer(t, out)
        return out

    def _command(self, now: float | None = None) -> np.ndarray | None:
        """The command for time `now` (default: the clock), or None when there is nothing to play.

        None means: no chunk yet, the queue ran dry, or the watchdog expired. The caller
        then holds position. The returned array is the caller's to keep.
        """
        with self._lock:
            t = self._clock() if now is None else now
            if not self._playing(t):
                self._ema = None  # a hold happened; do not smooth from before it
                return None
            self._prune(t)
            self._blend_into(t, self._blend, self._sample)
            alpha = self._config.ema_alpha
            if alpha < 1.0:
                if self._ema is None:
                    self._ema = self._blend.copy()
                else:
                    self._ema *= 1.0 - alpha
                    self._ema += alpha * self._blend
                return self._ema.copy()
            return self._blend.copy()

    def remaining_steps(self, now: float | None = None) -> float:
        """Steps left before the queue runs dry (0 when nothing is playing)."""
        with self._lock:
            t = self._clock() if now is None else now
            if not self._playing(t):
                return 0.0
            newest = self._layers[-1]
            return float(len(newest.actions) - max(0.0, newest.position(t, self._hz)))

    def preview(self, times) -> np.ndarray | None:
        """The schedule (blend, no EMA) at each of `times` (ascending) without touching its state,
        for the times the queue still covers: rows stop where it would run dry. None when nothing
        is playing at the first time."""
        with self._lock:
            if not times or not self._playing(times[0]):
                return None
            newest = self._layers[-1]
            covered = [t for t in times if newest.position(t, self._hz) < len(newest.actions) - 1e-6]
            out = np.empty((len(covered), self._config.action_dim))
            scratch = np.empty(self._config.action_dim)
            for row, t in enumerate(covered):
                self._blend_into(t, out[row], scratch)
            return out

    @property
    def chunk_duration_s(self) -> float:
        """How long one full chunk plays."""
        return self._config.action_horizon / self._hz

    def watchdog_expired(self, now: float | None = None) -> bool:
        """True when no chunk that contributed steps arrived within watchdog_timeout_s (or none ever)."""
        with self._lock:
            t = self._clock() if now is None else now
            return self._expired(t)

    def reset(self) -> None:
        """Forget queued chunks, the watchdog and the EMA state (counters are kept)."""
        with self._lock:
            self._close_segment(self._clock())
            self._layers = []
            self._last_fresh = None
            self._ema = None

    # -- internals (call with the lock held) ---------------------------------------------

    def _play_until(self) -> float:
        """Clock time at which the current schedule stops playing (dry or watchdog), if nothing is added."""
        if not self._layers or self._last_fresh is None:
            return -math.inf
        newest = self._layers[-1]
        dry = newest.origin + (newest.offset + len(newest.actions)) / self._hz
        return min(dry, self._last_fresh + self._config.watchdog_timeout_s)

    def _plan_total(self) -> float:
        """Plan time at the end of the newest closed segment."""
        if not self._segments:
            return 0.0
        w0, w1, p0 = self._segments[-1]
        return p0 + (w1 - w0) if w1 > w0 else p0

    def _close_segment(self, t: float) -> None:
        """Nothing plays after min(t, the schedule's end) any more: close the open segment there.
        A clock that went back before the open segment began voids the history (another time line)."""
        if self._open is None:
            if self._segments and t < self._segments[-1][1] - _CLOCK_BACK_TOLERANCE_S:
                self._void_history()
            return
        w0, p0 = self._open
        self._open = None
        if t < w0 - _CLOCK_BACK_TOLERANCE_S:
            self._segments.append((w0, w0, p0))
            self._void_history()
            return
        end = max(w0, min(t, self._play_until()))
        self._segments.append((w0, end, p0))

    def _void_history(self) -> None:
        total = self._plan_total()
        self._segments.clear()
        self._segments.append((-math.inf, -math.inf, total))  # plan time stays monotonic

    def _plan_at(self, t: float) -> float:
        """Plan time at clock time t: advances only inside segments where a chunk played."""
        if self._open is not None:
            w0, p0 = self._open
            if t >= w0:
                return p0 + max(0.0, min(t, self._play_until()) - w0)
        for w0, w1, p0 in reversed(self._segments):
            if t >= w1:
                return p0 + (w1 - w0) if w1 > w0 else p0
            if t >= w0:
                return p0 + (t - w0)
        if self._segments:
            return self._segments[0][2]
        return self._open[1] if self._open is not None else 0.0

    def _validated(self, actions: np.ndarray, observation_time: float) -> np.ndarray:
        chunk = np.asarray(actions, dtype=np.float64)
        dim = self._config.action_dim
        if chunk.ndim != 2 or chunk.shape[0] < 1 or chunk.shape[1] != dim:
            raise ValueError(f"actions must have shape (H>=1, {dim}), got {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("actions contain non-finite values")
        if not math.isfinite(observation_time):
            raise ValueError(f"observation_time must be finite, got {observation_time}")
        return chunk[: self._config.action_horizon]

    def _blend_into(self, t: float, out: np.ndarray, scratch: np.ndarray) -> None:
        """The layers at time t, each newer one faded in by its weight, written into `out`."""
        base = self._layers[0]
        base.sample(base.position(t, self._hz), out)
        for layer in self._layers[1:]:
            w = layer.weight(t)
            if w <= 0.0:
                continue
            layer.sample(layer.position(t, self._hz), scratch)
            scratch -= out
            scratch *= w
            out += scratch

    def _expired(self, t: float) -> bool:
        """No fresh chunk within the watchdog, or the clock went back (sim time reset, bag loop): the
        queued steps then belong to a future that may never come."""
        if self._last_fresh is None:
            return True
        age = t - self._last_fresh
        return age > self._config.watchdog_timeout_s or age < -_CLOCK_BACK_TOLERANCE_S

    def _playing(self, t: float) -> bool:
        """A chunk has steps left at time t and the watchdog is satisfied."""
        if not self._layers or self._expired(t):
            return False
        newest = self._layers[-1]
        return newest.position(t, self._hz) < len(newest.actions)

    def _push(self, layer: _Layer, now: float) -> None:
        """A new top layer over the ones still showing at `now` (the oldest dropped beyond _MAX_LAYERS)."""
        self._prune(now)
        if len(self._layers) >= _MAX_LAYERS:
            del self._layers[0]
        self._layers.append(layer)

    def _prune(self, t: float) -> None:
        """Drop layers hidden under a newer layer that has fully faded in by time t."""
        for i in range(len(self._layers) - 1, 0, -1):
            if self._layers[i].weight(t) >= 1.0:
                del self._layers[:i]
                return
