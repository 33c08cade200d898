"""The inference thread: a fresh snapshot becomes a request; the validated reply goes to the scheduler.

The node's callbacks only store the latest messages (inputs.py); the 100 Hz command loop
(in the node) never waits on any of this.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.inputs import LatestInputs, Snapshot, StaleInputs
from alfie_gr00t.client.latency import RefillPolicy
from alfie_gr00t.client.links import AlfieLink, Gr00tLink, SentFrames
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.client import rtc
from alfie_gr00t.client.scheduler import ActionScheduler
from alfie_gr00t.client.state_machine import ClientStateMachine
from alfie_gr00t.stats import RollingStats, StageStats, StageTimer
from alfie_gr00t.wire import gr00t as gr00t_protocol
from alfie_gr00t.wire import images, protocol
from alfie_gr00t.wire.observation import ChunkPrefix
from alfie_gr00t.wire.transport import ReqClient, RequestTimeout


# -- what an exchange sent and received, for the debug topics and the recorder ------------------------
@dataclass(frozen=True)
class ExchangeRecord:
    """One observation -> chunk exchange, as it happened (built only when an observer wants it).

    capture_time: the observation's capture time on the client clock (the request's timestamp);
    frames: as sent; state: the state as sent (normalized when a stats file is set); task: the
    language sent; chunk: the reply in robot units (denormalized), before the scheduler and the gate
    (None when no valid chunk came back); kept: the steps the scheduler queued (None when none were);
    dropped: steps skipped for latency compensation; first_kept_time: clock time at which kept[0]
    plays."""

    capture_time: float
    frames: SentFrames
    state: np.ndarray
    task: str
    chunk: np.ndarray | None = None
    kept: np.ndarray | None = None
    dropped: int = 0
    first_kept_time: float | None = None


class ExchangeObserver:
    """What the worker calls after each exchange that sent frames. `wanted()` is asked first and must
    be cheap: when it says False no record is built at all. `__call__` runs on the inference thread,
    after the chunk was queued (it cannot delay the robot), and must not raise (errors are logged)."""

    def wanted(self) -> bool:
        return False

    def __call__(self, record: ExchangeRecord) -> None:
        pass


# -- the inference thread ----------------------------------------------------------------------
class InferenceWorker:
    """Owns the REQ socket. At most one request in flight, paced at `target_fps`, sent when the
    refill policy says the queue needs the next chunk and the inputs are fresh and valid.

    It never dies: any exception in an exchange is a counted failure with `last_error`, and
    `max_consecutive_failures` of them move the client to ERROR; the thread lives on, so a
    fresh activation works. A reply whose every step the robot executed while it was computed
    (plan time, not wall time: a robot that held still executed none) is a failure too ("late").

    The first contact of an activation is a `ping` (latency.py: it proves the server alive with
    a short timeout and may carry the server's latency); then observations follow.

    Against a server whose ping advertises real-time chunking (rtc.py), a request also leaves every
    `replan_every_steps` executed steps, carries the whole schedule that will still play with the
    steps that will have played (frozen) before the reply is expected, and a reply whose frozen steps
    are what was sent is spliced by the scheduler; any other reply is crossfaded and counted."""

    def __init__(self, config: ClientConfig, inputs: LatestInputs, scheduler: ActionScheduler,
                 machine: ClientStateMachine, normalizer: Normalizer, refill: RefillPolicy, on_error=None,
                 clock=time.monotonic, frame_decoder=None, log=None, observer: ExchangeObserver | None = None):
        self._cfg = config
        self._inputs = inputs
        self._scheduler = scheduler
        self._machine = machine
        self._normalizer = normalizer
        self.refill = refill
        self._on_error = on_error or (lambda left_state, message, epoch: None)
        self._frame_decoder = frame_decoder  # stored frames -> message objects (the node stores serialized bytes)
        self._clock = clock
        self._log = log or (lambda level, message: None)
        self.observer = observer  # debug topics / recorder (None: nothing is built)
        self._lower = np.asarray(config.joint_lower_limits) - config.chunk_reject_margin
        self._upper = np.asarray(config.joint_upper_limits) + config.chunk_reject_margin
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._codec = images.ParallelCodec(config.encode_threads)
        self._client = ReqClient(config.address, config.inference_timeout_ms, curve=config.curve_keys())
        link_cls = Gr00tLink if config.server_protocol == "gr00t" else AlfieLink
        self._link = link_cls(config, self._client, self._codec)
        self._epoch_seen = -1
        self.requests_ok = 0
        self.requests_failed = 0
        self.requests_late = 0
        self.consecutive_failures = 0
        self.stale_skipped = 0
        self.stale_inputs: list[str] = []
        self.chunks_rejected = 0
        self.last_error = ""
        self.last_steps_skipped = 0
        self.pings_ok = 0
        self.rtc = rtc.RtcCounters()
        self._sent_prefix: rtc.SentPrefix | None = None  # of the exchange in flight
        self._plan_at_request: float | None = None  # plan time when the last request left
        self._request_timeout_ms = float(config.inference_timeout_ms)  # of the exchange in flight
        self.round_trip_ms = RollingStats()
        self.latency_ms = RollingStats()  # capture -> chunk queued
        self.server_inference_ms = RollingStats()
        self.stages = StageStats()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; it may be inside a request, so wait up to the timeout cap for it."""
        self._stop.set()
        if self._thread.ident is not None:  # never started (tests drive step() by hand): nothing to join
            self._thread.join(timeout=self._request_timeout_ms / 1000.0 + 1.0)
        if self._thread.is_alive():  # never close a socket another thread still uses; exit takes it
            self._log("warning", "inference thread still busy at shutdown; its socket is left to process exit")
            return
        self._client.close()
        self._codec.close()

    def _run(self) -> None:
        period = 1.0 / self._cfg.target_fps
        next_allowed = -math.inf
        while not self._stop.is_set():
            now = self._clock()
            if next_allowed - now > period:  # the clock jumped back: pace from now
                next_allowed = now
            if not self._machine.wants_inference or now < next_allowed or not self._due(now):
                self._stop.wait(0.002)
                continue
            next_allowed = now + period
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything; step() counts it
                self._log("error", f"inference thread: unexpected {type(exc).__name__}: {exc}")

    def _due(self, now: float) -> bool:
        """The refill policy wants the next chunk, or (replanning) enough steps were executed."""
        if self.refill.request_due(self._scheduler.remaining_steps(now)):
            return True
        return self._plan_at_request is not None and self.refill.replan_due(self.executed_steps_since_request(now))

    def executed_steps_since_request(self, now: float) -> float:
        """Steps the robot executed (plan time) since the last request left; inf before the first."""
        if self._plan_at_request is None:
            return math.inf
        return (self._scheduler.plan_time(now) - self._plan_at_request) * self._cfg.action_step_hz

    def step(self) -> bool:
        """One observation -> chunk exchange; True when a chunk was queued."""
        epoch = self._machine.epoch
        if epoch != self._epoch_seen:
            self._epoch_seen = epoch
            self.refill.activated()
            self._plan_at_request = None
        if self.refill.probe_due() and not self._probe(epoch):
            return False
        try:
            snap = self._inputs.snapshot(self._cfg.max_observation_age_ms / 1000.0)
        except StaleInputs as exc:
            self.stale_skipped += 1
            self.stale_inputs = exc.names
            return False
        self.stale_inputs = []
        timer = StageTimer()
        sent = self._clock()
        self._link.last_sent = None
        state = None
        try:
            if self._frame_decoder is not None:
                snap = Snapshot({n: self._frame_decoder(f) for n, f in snap.frames.items()}, snap.state,
                                snap.state_time, snap.language)
            timer.mark("deserialize")
            state = self._normalizer.normalize_state(snap.state)
            self._request_timeout_ms = self.refill.timeout_ms()
            prefix = self._prefix(snap.state_time)
            self._plan_at_request = self._scheduler.plan_time(sent)
            if self._sent_prefix is not None:
                self.rtc.replans += 1
            reply = self._link.exchange(snap, state, timer, prefix, self._request_timeout_ms)
            actions = self._normalizer.denormalize_action(reply.actions)
            self._check_limits(actions)
        except Exception as exc:  # noqa: BLE001 - every failure is counted; the thread lives on
            known = (RequestTimeout, protocol.ProtocolError, gr00t_protocol.Gr00tProtocolError, images.ImageError,
                     ValueError)
            message = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            self._record_failure(epoch, message)
            self._observe(snap, state)
            return False
        arrived = self._clock()
        self.round_trip_ms.add(timer.stages.get("round_trip", 0.0))
        self.server_inference_ms.add(reply.server_inference_ms)
        if not self._machine.may_play(epoch):
            self._observe(snap, state, actions)
            return False  # deactivated while the request was in flight
        # Queued atomically with the state: a deactivation after the check above (and a reactivation)
        # must not find this activation's chunk in the next activation's schedule.
        frozen = self._frozen_to_splice(actions, reply.rtc_report)  # 0: crossfade as without replanning
        dropped = self._machine.play_if_current(
            epoch, lambda: self._scheduler.add_chunk(actions, snap.state_time, frozen_steps=frozen))
        if dropped is None:
            self._observe(snap, state, actions)
            return False
        self.last_steps_skipped = dropped
        if dropped >= len(actions):
            self.requests_late += 1
            self._record_failure(epoch, f"late: the reply came {(arrived - snap.state_time) * 1000:.0f} ms after "
                                        f"capture and the robot had executed all {len(actions)} of its steps "
                                        "meanwhile")
            self._observe(snap, state, actions, dropped=dropped)
            return False
        self.requests_ok += 1
        self.consecutive_failures = 0
        self.refill.record(arrived - snap.state_time, arrived - sent)
        self.latency_ms.add((arrived - snap.state_time) * 1000.0)
        self._machine.chunk_arrived(epoch)
        timer.mark("schedule")
        self.stages.add(timer.stages)
        self._observe(snap, state, actions, dropped=dropped, queued=True)
        return True

    def _observe(self, snap: Snapshot, state, actions=None, dropped: int = 0, queued: bool = False) -> None:
        """Hand the exchange to the observer, when there is one that wants it and frames went out."""
        observer, sent_frames = self.observer, self._link.last_sent
        if observer is None or sent_frames is None or state is None:
            return
        try:
            if not observer.wanted():
                return
            kept = first = None
            if queued:
                kept, first = actions[dropped:], self._scheduler.newest_start()
            observer(ExchangeRecord(snap.state_time, sent_frames, np.asarray(state, dtype=np.float64),
                                    snap.language, actions, kept, dropped, first))
        except Exception as exc:  # noqa: BLE001 - debugging output must never cost the robot a chunk
            self._log("warning", f"exchange observer: {type(exc).__name__}: {exc}")

    def _probe(self, epoch: int) -> bool:
        """First contact of an activation: Isaac-GR00T's `ping` (our server answers it on the same
        socket), with a short timeout. Any reply proves the server alive (an error map from a server
        that knows no endpoints too); a latency figure in it seeds the first request's timeout. No
        reply is a counted failure, so a silent server reaches ERROR after N short waits. True when
        answered (the observation follows at once)."""
        request = {"endpoint": "ping"}
        if self._cfg.api_token:
            request["api_token"] = self._cfg.api_token
        self._request_timeout_ms = self.refill.probe_timeout_ms()
        try:
            raw = self._client.request(gr00t_protocol.pack(request), self._request_timeout_ms)
        except Exception as exc:  # noqa: BLE001 - counted like any failed exchange
            known = (RequestTimeout,)
            message = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            self._record_failure(epoch, f"ping: {message}")
            return False
        self.pings_ok += 1
        answer = _unpacked(raw)
        self.refill.probe_answered(_reported_latency_s(answer), rtc=rtc.advertised(answer))
        return True

    def _prefix(self, capture: float) -> ChunkPrefix | None:
        """The steps of the current schedule that will still play, aligned to this observation's step
        grid, up to the expected delay (only while something is playing). When the queue will run dry
        before the reply is expected, only the steps it still covers: those are what will execute.

        Replanning (a server that inpaints): every step the schedule still covers (the server inpaints
        the ones after the frozen steps toward them), and one frozen step more than the expected delay:
        the robot interpolates toward the step after the one it passed, so that one is committed too.
        Then a reply inside the expected latency lands while the robot is still inside its frozen steps."""
        self._sent_prefix = None
        if not self._cfg.send_action_prefix:
            return None
        horizon = self._cfg.action_horizon
        replanning = self.refill.replanning()
        delay = min(self.refill.delay_steps() + (1 if replanning else 0), horizon)
        if delay <= 0:
            return None
        hz = self._cfg.action_step_hz
        planned = self._scheduler.preview([capture + k / hz for k in range(horizon if replanning else delay)])
        if planned is None or len(planned) == 0:
            return None
        frozen = min(delay, len(planned))
        if replanning:
            self._sent_prefix = rtc.SentPrefix(planned, frozen)
        return ChunkPrefix(self._normalizer.normalize_action(planned).astype(np.float32), frozen)

    def _frozen_to_splice(self, actions: np.ndarray, report: rtc.ReplyReport) -> int:
        """How many leading steps of this reply may be spliced (0: crossfade as without real-time
        chunking). The frozen steps must equal what was sent within `splice_tolerance`, whatever the
        server claims; a reply that says it froze fewer is checked on those."""
        sent = self._sent_prefix
        if sent is None:
            return 0
        frozen = sent.frozen_steps if report.frozen_steps is None else min(sent.frozen_steps, report.frozen_steps)
        if frozen <= 0:
            self.rtc.fallback("the server did not apply real-time chunking to this request"
                              + (f": {report.reason}" if report.reason else ""))
            return 0
        deviation = rtc.frozen_deviation(actions, sent, frozen)
        self.rtc.frozen_max_deviation = max(self.rtc.frozen_max_deviation, deviation)
        if deviation > self._cfg.splice_tolerance:
            self.rtc.fallback(f"frozen steps moved by {deviation:.4f} (> splice_tolerance "
                              f"{self._cfg.splice_tolerance}) from the prefix sent: crossfaded")
            return 0
        return frozen

    def rtc_status(self) -> dict:
        """Replanning facts for the status JSON."""
        c = self.rtc
        return {"server": self.refill.server_rtc, "replanning": self.refill.replanning(),
                "replan_every_steps": self._cfg.replan_every_steps, "replans": c.replans,
                "splices": self._scheduler.splices, "late_crossfades": self._scheduler.splices_late,
                "fallback_crossfades": c.fallback_crossfades, "last_fallback": c.last_fallback,
                "frozen_max_deviation": round(c.frozen_max_deviation, 6)}

    def _check_limits(self, actions: np.ndarray) -> None:
        if not np.isfinite(actions).all():
            raise ValueError("chunk holds non-finite values after denormalization")
        outside = (actions < self._lower) | (actions > self._upper)
        if outside.any():
            self.chunks_rejected += 1
            step, dim = np.argwhere(outside)[0]
            raise ValueError(f"chunk rejected: step {step} dim {dim} = {actions[step, dim]:.3f} is beyond the "
                             f"joint limits by more than chunk_reject_margin={self._cfg.chunk_reject_margin}")

    def _record_failure(self, epoch: int, message: str) -> None:
        self.refill.request_failed()
        self.requests_failed += 1
        self.consecutive_failures += 1
        self.last_error = message[:500]
        self._log("warning", f"request failed ({self.consecutive_failures}/{self._cfg.max_consecutive_failures}): "
                             f"{self.last_error}")
        if self.consecutive_failures >= self._cfg.max_consecutive_failures:
            left = self._machine.fail(epoch)
            if left is not None:
                self._on_error(left, f"{self.consecutive_failures} consecutive failures, last: {self.last_error}", epoch)

    def reset_failures(self) -> None:
        self.consecutive_failures = 0


_REPORTED_KEYS = ("inference_p95_ms", "last_inference_ms", "average_inference_ms")


def _unpacked(raw):
    """A ping reply as a Python object (None when it is not one we can read: it still proves the server alive)."""
    try:
        return gr00t_protocol.unpack(bytes(raw))
    except Exception:  # noqa: BLE001 - any reply proves the server alive; its contents are optional
        return None


def _reported_latency_s(reply) -> float | None:
    """The server's own latency figure in a ping reply (ms keys in seconds), None when it has none."""
    if not isinstance(reply, dict):
        return None
    for key in _REPORTED_KEYS:
        value = reply.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            return float(value) / 1000.0
    return None
