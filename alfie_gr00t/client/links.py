"""One request/reply exchange per wire protocol (ours and Isaac-GR00T's)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t.client import rtc
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.inputs import Snapshot, frame_to_jpeg, frame_to_model_rgb

from alfie_gr00t.layout import LAYOUT_GROUPS
from alfie_gr00t.stats import StageTimer
from alfie_gr00t.wire import gr00t as gr00t_protocol
from alfie_gr00t.wire import images, protocol
from alfie_gr00t.wire.observation import ChunkPrefix
from alfie_gr00t.wire.transport import ReqClient


# -- links: one request/reply exchange per protocol --------------------------------------------
@dataclass(frozen=True)
class SentFrames:
    """The frames of one exchange exactly as they went on the wire, by camera name. References only
    (no copies): the debug topics and the recorder turn them into bytes when, and only when, someone
    wants them. `frames` values: JPEG bytes ("jpeg"), protocol.RawImage or an (H, W, 3) uint8 array
    ("rgb8", the raw frames of image_encoding raw and of Isaac-GR00T's protocol)."""

    encoding: str  # "jpeg" | "rgb8"
    width: int
    height: int
    frames: dict

    def data(self, camera: str) -> bytes:
        frame = self.frames[camera]
        if isinstance(frame, (bytes, bytearray, memoryview)):
            return bytes(frame)
        if isinstance(frame, protocol.RawImage):
            return bytes(frame.data)
        return np.ascontiguousarray(frame, dtype=np.uint8).tobytes()


@dataclass
class ChunkReply:
    actions: np.ndarray  # (horizon, dim) in model units
    server_inference_ms: float = 0.0
    server_stages: dict = field(default_factory=dict)
    rtc_report: rtc.ReplyReport = rtc.ReplyReport(None)  # what the reply says real-time chunking did with the prefix


class AlfieLink:
    """Our protocol: JPEG (or raw RGB) frames in a msgpack map."""

    def __init__(self, config: ClientConfig, client: ReqClient, codec: images.ParallelCodec):
        self._cfg = config
        self._client = client
        self._codec = codec
        self._frame_id = 0
        self.last_sent: SentFrames | None = None  # the frames of the latest exchange (set before it is sent)

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
        self.last_sent = SentFrames("jpeg" if cfg.image_encoding == "jpeg" else "rgb8", cfg.image_width,
                                    cfg.image_height, frames)
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
        report = _reported(raw) if prefix is not None else rtc.ReplyReport(None)
        timer.mark("unpack")
        return ChunkReply(reply.actions, reply.inference_time_ms, reply.stages_ms, report)


class Gr00tLink:
    """Isaac-GR00T's PolicyServer protocol: raw frames, state split by the modality config.

    Speaks the wire generation of the server: the first reply that shows one (the
    get_modality_config reply's marker, or its arrays) fixes it for this link. A server that
    answers in both (ours: a ModalityConfig map with both markers) gets N1.7; while none is
    known, requests go in N1.6.
    """

    def __init__(self, config: ClientConfig, client: ReqClient, codec: images.ParallelCodec):
        self._cfg = config
        self._client = client
        self._codec = codec
        self._modality: dict | None = None
        self.generation: str | None = None
        self.last_sent: SentFrames | None = None  # the frames of the latest exchange (set before it is sent)

    def _call(self, endpoint: str, data=None, timeout_ms: float | None = None):
        request = {"endpoint": endpoint}
        if data is not None:
            request["data"] = data
        if self._cfg.api_token:
            request["api_token"] = self._cfg.api_token
        payload = gr00t_protocol.pack(request, self.generation or gr00t_protocol.N16)
        reply, generation = gr00t_protocol.unpack_generation(self._client.request(payload, timeout_ms))
        if self.generation is None:
            self.generation = generation
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
        self.last_sent = SentFrames("rgb8", cfg.image_width, cfg.image_height, rgb)
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
        # N1.7 servers may send a numpy scalar (msgpack-numpy carries them)
        finite = isinstance(ms, (int, float, np.integer, np.floating)) and not isinstance(ms, bool) \
            and math.isfinite(ms)
        return ChunkReply(actions, float(ms) if finite else 0.0,
                          rtc_report=rtc.reported(info) if prefix is not None else rtc.ReplyReport(None))


def _reported(raw) -> rtc.ReplyReport:
    """The `rtc` map of one of our replies (already validated by parse_action_response), read again."""
    try:
        return rtc.reported(protocol.unpack_message(raw, 1 << 20))
    except protocol.ProtocolError:
        return rtc.ReplyReport(None)

