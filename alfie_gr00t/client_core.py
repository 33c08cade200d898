"""The robot client's ROS-free core: inputs, state machine, policy links, inference thread.

The node's callbacks only store the latest messages here; the inference thread turns a
fresh snapshot into a request, validates the reply and hands the chunk to the scheduler.
The 100 Hz command loop (in the node) never waits on any of this.
"""

from __future__ import annotations

import enum
import math
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t import gr00t_protocol, images, protocol
from alfie_gr00t.config import ClientConfig
from alfie_gr00t.engines.base import ChunkPrefix
from alfie_gr00t.latency import RefillPolicy
from alfie_gr00t.layout import LAYOUT_GROUPS
from alfie_gr00t.normalization import Normalizer
from alfie_gr00t.robot_state import MeasuredState, capture_time, describe_problems, fresh_mask
from alfie_gr00t.scheduler import ActionScheduler
from alfie_gr00t.stats import RollingStats, StageStats, StageTimer
from alfie_gr00t.transport import ReqClient, RequestTimeout

try:  # cv_bridge is a ROS system package (not on PyPI); numpy conversion covers the common encodings.
    from cv_bridge import CvBridge
except ImportError:  # pragma: no cover - depends on the machine
    CvBridge = None


class ClientState(str, enum.Enum):
    IDLE = "IDLE"
    CONNECTING = "CONNECTING"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    E_STOP = "E_STOP"


class ClientStateMachine:
    """SPEC §4 transitions. Each event returns True when the robot must get one hold now.

    `on_change(old, new, cause)` is called for every transition (the node logs them all)."""

    def __init__(self, on_change=None):
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda old, new, cause: None)
        self.state = ClientState.IDLE
        self.epoch = 0  # bumped on every activation, so a late reply from an older one is dropped

    def _move(self, new: ClientState, cause: str) -> bool:
        old, self.state = self.state, new
        if new is ClientState.CONNECTING and old is not ClientState.CONNECTING:
            self.epoch += 1
        if new is not old:
            self._on_change(old, new, cause)
        return old is ClientState.ACTIVE and new is not ClientState.ACTIVE

    def activate(self, on: bool) -> bool:
        with self._lock:
            if self.state is ClientState.E_STOP:
                return False  # latched until estop:false
            if on:
                if self.state in (ClientState.IDLE, ClientState.ERROR):
                    return self._move(ClientState.CONNECTING, "activate:true")
                return False
            return self._move(ClientState.IDLE, "activate:false")

    def estop(self, on: bool) -> bool:
        with self._lock:
            if on:
                was_stopped = self.state is ClientState.E_STOP
                self._move(ClientState.E_STOP, "estop:true")
                return not was_stopped  # always stop on entering E_STOP
            if self.state is ClientState.E_STOP:
                self._move(ClientState.IDLE, "estop:false")
            return False

    def refuse(self, cause: str) -> None:
        """An activation that may not start: IDLE/ERROR -> ERROR (a fresh activate:true retries)."""
        with self._lock:
            if self.state in (ClientState.IDLE, ClientState.ERROR):
                self._move(ClientState.ERROR, cause)

    def may_play(self, epoch: int) -> bool:
        """A chunk from activation `epoch` may still be queued."""
        with self._lock:
            return epoch == self.epoch and self.state in (ClientState.CONNECTING, ClientState.ACTIVE)

    def chunk_arrived(self, epoch: int) -> bool:
        """A valid chunk for activation `epoch` was queued: CONNECTING -> ACTIVE."""
        with self._lock:
            if epoch != self.epoch or self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return False
            self._move(ClientState.ACTIVE, "first chunk")
            return True

    def fail(self, epoch: int | None, cause: str = "inference failures") -> ClientState | None:
        """Too many consecutive failures during activation `epoch` (None: the current one), or a
        refused activation: move to ERROR and return the state left (None when nothing changed)."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return None
            if self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return None
            left = self.state
            self._move(ClientState.ERROR, cause)
            return left

    @property
    def wants_inference(self) -> bool:
        return self.state in (ClientState.CONNECTING, ClientState.ACTIVE)


class StaleInputs(RuntimeError):
    """Inputs that may not be sent: cameras that are stale or never arrived, and state dims
    that are stale, never measured or non-finite (each named)."""

    def __init__(self, names: list[str], detail: str = ""):
        super().__init__(f"stale or unusable inputs: {detail or ', '.join(names)}")
        self.names = names


@dataclass(frozen=True)
class Snapshot:
    frames: dict  # camera -> the latest sensor_msgs Image/CompressedImage (or any object with the same fields)
    state: np.ndarray
    state_time: float  # the observation's capture time on the client clock (the state's oldest dim)
    language: str


class LatestInputs:
    """The newest camera frames (with capture times) and task, plus the shared MeasuredState;
    written by callbacks, read by the inference thread."""

    def __init__(self, camera_names, measured: MeasuredState, task: str, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._frames: dict = {}
        self._frame_times: dict[str, float] = {}
        self._camera_names = tuple(camera_names)
        self.measured = measured
        self.task = task

    def store_frame(self, name: str, msg, stamp: float | None = None) -> None:
        """A camera frame, captured at `stamp` (its header stamp, trusted only when sane) or now."""
        when = capture_time(stamp, self._clock())
        with self._lock:
            self._frames[name] = msg
            self._frame_times[name] = when

    def snapshot(self, max_age_s: float) -> Snapshot:
        """The latest inputs, or StaleInputs naming every camera and state dim that may not be sent."""
        now = self._clock()
        reading = self.measured.reading()
        with self._lock:
            stale = [n for n in self._camera_names
                     if not fresh_mask(self._frame_times.get(n, -np.inf), now, max_age_s)]
            frames = dict(self._frames)
        problems = reading.problems(now, max_age_s)
        if stale or problems:
            detail = "; ".join(filter(None, [f"cameras: {', '.join(stale)}" if stale else "",
                                             describe_problems(problems)]))
            raise StaleInputs(stale + [n for names in problems.values() for n in names], detail)
        return Snapshot(frames, reading.observation_vector(), reading.capture_time(), self.task)


def header_stamp_from_cdr(data: bytes) -> float | None:
    """The header stamp of a serialized sensor_msgs Image/CompressedImage (CDR: 4-byte encapsulation,
    then std_msgs/Header starting with stamp.sec int32, stamp.nanosec uint32). None if unreadable."""
    if len(data) < 12 or data[0] != 0:
        return None
    order = "<" if data[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    return sec + nanosec * 1e-9 if nanosec < 1_000_000_000 else None


# -- frames -------------------------------------------------------------------------------
_bridge = None


def frame_to_rgb(msg) -> np.ndarray:
    """sensor_msgs Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    global _bridge
    if hasattr(msg, "encoding"):
        if CvBridge is not None:
            _bridge = _bridge or CvBridge()
            return _bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        return images.to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step)
    return images.decode_jpeg(bytes(msg.data), max_side=8192)


def frame_to_jpeg(msg, width: int, height: int, quality: int) -> bytes:
    """JPEG at the model size; a compressed frame that already is one passes through untouched."""
    if not hasattr(msg, "encoding"):
        data = bytes(msg.data)
        try:
            if images.jpeg_dimensions(data) == (width, height):
                return data
        except images.ImageError:
            pass
    return images.encode_jpeg(images.resize(frame_to_rgb(msg), width, height), quality)


def frame_to_model_rgb(msg, width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(images.resize(frame_to_rgb(msg), width, height))


# -- links: one request/reply exchange per protocol --------------------------------------------
@dataclass
class ChunkReply:
    actions: np.ndarray  # (horizon, dim) in model units
    server_inference_ms: float = 0.0
    server_stages: dict = field(default_factory=dict)


class AlfieLink:
    """Our protocol: JPEG (or raw RGB) frames in a msgpack map."""

    def __init__(self, config: ClientConfig, client: ReqClient, codec: images.ParallelCodec):
        self._cfg = config
        self._client = client
        self._codec = codec
        self._frame_id = 0

    def exchange(self, snap: Snapshot, state: np.ndarray, timer: StageTimer, prefix: ChunkPrefix | None,
                 timeout_ms: float) -> ChunkReply:
        cfg = self._cfg
        if cfg.image_encoding == "jpeg":
            frames = self._codec.map(
                lambda m: frame_to_jpeg(m, cfg.image_width, cfg.image_height, cfg.jpeg_quality), snap.frames)
            timer.mark("encode")
        else:
            frames = self._codec.map(lambda m: protocol.RawImage(
                cfg.image_width, cfg.image_height, frame_to_model_rgb(m, cfg.image_width, cfg.image_height).tobytes()),
                snap.frames)
            timer.mark("convert")
        self._frame_id += 1
        # timestamp: the capture time on the client's clock (ROS time: unix seconds, or sim time)
        payload = protocol.encode_observation(snap.state_time, self._frame_id, frames, state, snap.language,
                                              cfg.api_token or None, prefix)
        timer.mark("pack")
        raw = self._client.request(payload, timeout_ms)
        timer.mark("round_trip")
        reply = protocol.parse_action_response(raw, cfg.action_horizon, cfg.action_dim)
        if reply.frame_id is not None and reply.frame_id != self._frame_id:
            raise protocol.ProtocolError(f"reply for frame {reply.frame_id}, expected {self._frame_id}")
        timer.mark("unpack")
        return ChunkReply(reply.actions, reply.inference_time_ms, reply.stages_ms)


class Gr00tLink:
    """Isaac-GR00T's PolicyServer protocol: raw npy frames, state split by the modality config."""

    def __init__(self, config: ClientConfig, client: ReqClient, codec: images.ParallelCodec):
        self._cfg = config
        self._client = client
        self._codec = codec
        self._modality: dict | None = None

    def _call(self, endpoint: str, data=None, timeout_ms: float | None = None):
        request = {"endpoint": endpoint}
        if data is not None:
            request["data"] = data
        if self._cfg.api_token:
            request["api_token"] = self._cfg.api_token
        reply = gr00t_protocol.unpack(self._client.request(gr00t_protocol.pack(request), timeout_ms))
        if isinstance(reply, dict) and "error" in reply:
            raise protocol.ProtocolError(f"server error: {str(reply['error'])[:500]}")
        return reply

    def modality(self) -> dict:
        if self._modality is None:
            self._modality = gr00t_protocol.parse_modality_config(self._call("get_modality_config"), LAYOUT_GROUPS)
        return self._modality

    def exchange(self, snap: Snapshot, state: np.ndarray, timer: StageTimer, prefix: ChunkPrefix | None,
                 timeout_ms: float) -> ChunkReply:
        cfg = self._cfg
        modality = self.modality()
        rgb = self._codec.map(lambda m: frame_to_model_rgb(m, cfg.image_width, cfg.image_height), snap.frames)
        keys = modality["video_keys"]
        names = keys if set(keys) == set(cfg.camera_names) else cfg.camera_names  # by name, else by order
        frames = {key: rgb[name] for key, name in zip(keys, names)}
        timer.mark("convert")
        observation = gr00t_protocol.observation_dict(
            frames, state, snap.language, state_keys=modality["state_keys"], language_key=modality["language_key"])
        timer.mark("pack")
        # options: our real-time-chunking hint; a policy that does not use it ignores it
        options = None if prefix is None else {"action_prefix": prefix.actions.astype(np.float32),
                                               "inference_delay": int(prefix.delay_steps)}
        reply = self._call("get_action", {"observation": observation, "options": options}, timeout_ms)
        timer.mark("round_trip")
        actions = gr00t_protocol.chunk_from_action_dict(
            reply, action_keys=modality["action_keys"], horizon=cfg.action_horizon, dim=cfg.action_dim)
        info = reply[1] if isinstance(reply, list) and len(reply) > 1 and isinstance(reply[1], dict) else {}
        timer.mark("unpack")
        ms = info.get("inference_time_ms", 0.0)
        finite = isinstance(ms, (int, float)) and math.isfinite(ms)
        return ChunkReply(actions, float(ms) if finite else 0.0)


# -- the inference thread ----------------------------------------------------------------------
class InferenceWorker:
    """Owns the REQ socket. At most one request in flight, paced at `target_fps`, sent when the
    refill policy says the queue needs the next chunk and the inputs are fresh and valid.

    It never dies: any exception in an exchange is a counted failure with `last_error`, and
    `max_consecutive_failures` of them move the client to ERROR; the thread lives on, so a
    fresh activation works. A reply whose every step elapsed before it arrived is a failure too
    ("late")."""

    def __init__(self, config: ClientConfig, inputs: LatestInputs, scheduler: ActionScheduler,
                 machine: ClientStateMachine, normalizer: Normalizer, refill: RefillPolicy, on_error=None,
                 clock=time.monotonic, frame_decoder=None, log=None):
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
        self._lower = np.asarray(config.joint_lower_limits) - config.chunk_reject_margin
        self._upper = np.asarray(config.joint_upper_limits) + config.chunk_reject_margin
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._codec = images.ParallelCodec(config.encode_threads)
        self._client = ReqClient(config.address, config.inference_timeout_ms)
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
        self.round_trip_ms = RollingStats()
        self.latency_ms = RollingStats()  # capture -> chunk queued
        self.server_inference_ms = RollingStats()
        self.stages = StageStats()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; it may be inside a request, so wait up to the timeout cap for it."""
        self._stop.set()
        self._thread.join(timeout=self._cfg.inference_timeout_ms / 1000.0 + 1.0)
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
            if (not self._machine.wants_inference or now < next_allowed
                    or not self.refill.request_due(self._scheduler.remaining_steps(now))):
                self._stop.wait(0.002)
                continue
            next_allowed = now + period
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything; step() counts it
                self._log("error", f"inference thread: unexpected {type(exc).__name__}: {exc}")

    def step(self) -> bool:
        """One observation -> chunk exchange; True when a chunk was queued."""
        epoch = self._machine.epoch
        if epoch != self._epoch_seen:
            self._epoch_seen = epoch
            self.refill.activated()
        try:
            snap = self._inputs.snapshot(self._cfg.max_observation_age_ms / 1000.0)
        except StaleInputs as exc:
            self.stale_skipped += 1
            self.stale_inputs = exc.names
            return False
        self.stale_inputs = []
        timer = StageTimer()
        sent = self._clock()
        try:
            if self._frame_decoder is not None:
                snap = Snapshot({n: self._frame_decoder(f) for n, f in snap.frames.items()}, snap.state,
                                snap.state_time, snap.language)
            timer.mark("deserialize")
            state = self._normalizer.normalize_state(snap.state)
            reply = self._link.exchange(snap, state, timer, self._prefix(snap.state_time), self.refill.timeout_ms())
            actions = self._normalizer.denormalize_action(reply.actions)
            self._check_limits(actions)
        except Exception as exc:  # noqa: BLE001 - every failure is counted; the thread lives on
            known = (RequestTimeout, protocol.ProtocolError, gr00t_protocol.Gr00tProtocolError, images.ImageError,
                     ValueError)
            message = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            self._record_failure(epoch, message)
            return False
        arrived = self._clock()
        self.round_trip_ms.add(timer.stages.get("round_trip", 0.0))
        self.server_inference_ms.add(reply.server_inference_ms)
        if not self._machine.may_play(epoch):
            return False  # deactivated while the request was in flight
        dropped = self._scheduler.add_chunk(actions, snap.state_time)
        self.last_steps_skipped = dropped
        if dropped >= len(actions):
            self.requests_late += 1
            self._record_failure(epoch, f"late: the reply came {(arrived - snap.state_time) * 1000:.0f} ms after "
                                        f"capture, every one of its {len(actions)} steps had elapsed")
            return False
        self.requests_ok += 1
        self.consecutive_failures = 0
        self.refill.record(arrived - snap.state_time, arrived - sent)
        self.latency_ms.add((arrived - snap.state_time) * 1000.0)
        self._machine.chunk_arrived(epoch)
        timer.mark("schedule")
        self.stages.add(timer.stages)
        return True

    def _prefix(self, capture: float) -> ChunkPrefix | None:
        """The steps of the current schedule that will still play, aligned to this observation's step
        grid, up to the expected delay (only while something is playing). When the queue will run dry
        before the reply is expected, only the steps it still covers: those are what will execute."""
        if not self._cfg.send_action_prefix:
            return None
        delay = min(self.refill.delay_steps(), self._cfg.action_horizon)
        if delay <= 0:
            return None
        hz = self._cfg.action_step_hz
        planned = self._scheduler.preview([capture + k / hz for k in range(delay)])
        if planned is None or len(planned) == 0:
            return None
        return ChunkPrefix(self._normalizer.normalize_action(planned).astype(np.float32), len(planned))

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
