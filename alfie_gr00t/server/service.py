"""The policy service: request bytes in, reply bytes out, for both wire protocols.

`PolicyService.respond` is where a request is decoded, validated, run and answered.
It never raises: every failure becomes an error reply, so the REP socket is never
left waiting for a send. `serve_pending` answers what is queued on the REP socket; `BackgroundServer`
runs it in a loop on its own thread.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time

import numpy as np

from alfie_gr00t.wire import gr00t as gr00t_protocol
from alfie_gr00t.wire import images
from alfie_gr00t.wire import protocol
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.engines.base import Engine, EngineOutput, ObservationBatch, run_batched
from alfie_gr00t.stats import RollingStats, StageStats, StageTimer
from alfie_gr00t.wire.transport import RepEndpoint

log = logging.getLogger("alfie_gr00t.server")


class PolicyService:
    """Answers observation requests (our schema) and Isaac-GR00T endpoint requests."""

    def __init__(self, engine: Engine, config: ServerConfig, codec: images.ParallelCodec | None = None):
        self.engine = engine
        # An engine that read its model's layout (an Isaac-GR00T checkpoint: `engine.layout`) decides the
        # language key, video keys and groups; every request is split and checked with those.
        model_layout = getattr(engine, "layout", None)
        self.layout_source = str(getattr(model_layout, "source", "parameters"))
        self.layout_adopted = tuple(getattr(model_layout, "adopted", ()))
        self.layout_language_keys = tuple(getattr(model_layout, "language_keys", ()))  # all the checkpoint's
        self.config = config.with_layout(model_layout) if model_layout is not None else config
        log.info("%s", describe_layout(self.layout()))
        self._codec = codec or images.ParallelCodec(config.decode_threads)
        self._limits = config.limits
        self._gr00t_limits = gr00t_protocol.Gr00tLimits(
            max_batch_size=config.max_batch_size, max_image_side=config.max_image_side,
            max_array_bytes=config.max_message_bytes, max_language_chars=config.max_language_chars)
        self._token = config.api_token.encode()
        self.started = time.monotonic()
        self.total_requests = 0
        self.errors = 0
        self.last_error = ""
        self.kill_requested = False
        self.inference_ms = RollingStats()
        self.request_ms = RollingStats()
        self.warmup_ms: list[float] = []  # the node's warm-up runs: the latency figure before any request
        self.stages = StageStats()
        self.rtc_counts = {"requests_with_prefix": 0, "applied": 0}
        self.rtc_last: dict = {}

    # -- entry point -------------------------------------------------------------
    def respond(self, payload) -> bytes:
        """One reply for one request, whatever the request holds."""
        timer = StageTimer()
        self.total_requests += 1
        reply = None
        if len(payload) <= self._limits.max_message_bytes and _starts_with_endpoint(payload):
            reply = self._respond_gr00t(payload, fast=True)  # upstream's PolicyClient: decoded once, with the array hooks
        if reply is None:
            try:
                message = protocol.unpack_message(payload, self._limits.max_message_bytes)
            except protocol.ProtocolError as exc:
                return self._fail(str(exc), None)
            timer.mark("unpack")
            if isinstance(message, dict) and "endpoint" in message:
                message = None  # decoded again with ndarray markers; don't hold two copies
                reply = self._respond_gr00t(payload)
            else:
                reply = self._respond_observation(message, timer)
        self.request_ms.add(timer.total_ms())
        return reply

    def refuse(self, payload, message: str) -> bytes:
        """An error reply without serving the request (e.g. one sent in several ZeroMQ frames), in the
        protocol its first frame shows: Isaac-GR00T when it is a map with an "endpoint" key."""
        self.total_requests += 1
        gr00t = _starts_with_endpoint(payload)
        if not gr00t:
            try:
                decoded = protocol.unpack_message(payload, self._limits.max_message_bytes)
                gr00t = isinstance(decoded, dict) and "endpoint" in decoded
            except protocol.ProtocolError:
                pass
        if gr00t:
            return gr00t_protocol.pack({"error": self._record_error(message)})
        return self._fail(message, None)

    # -- our protocol ------------------------------------------------------------
    def _respond_observation(self, message, timer: StageTimer) -> bytes:
        frame_id = message.get("frame_id") if isinstance(message, dict) else None
        frame_id = frame_id if isinstance(frame_id, int) and not isinstance(frame_id, bool) else None
        try:
            obs = protocol.parse_observation(message, self.config.camera_names, self.config.action_dim, self._limits,
                                             self.config.action_horizon)
            self._check_token(obs.api_token)
            if all(isinstance(img, protocol.RawImage) for img in obs.images.values()):
                frames = {name: self._decode_image(img) for name, img in obs.images.items()}  # no codec: inline
            else:
                frames = self._codec.map(self._decode_image, obs.images)
            timer.mark("decode")
            batch = ObservationBatch(
                images={name: frame[None] for name, frame in frames.items()},
                state=obs.state[None], language=(obs.language,), timestamps=(obs.timestamp,),
                prefixes=(obs.prefix,))
            timer.mark("preprocess")
            output = self._infer(batch)
            timer.mark("inference")
            rtc = self._rtc_report(batch, output, 0)
            packed_actions = protocol.pack_actions(output.actions[0])
            timer.mark("pack")
        except (protocol.ProtocolError, images.ImageError, PermissionError) as exc:
            return self._fail(str(exc), frame_id)
        except Exception as exc:  # engine failures must not take the server down
            log.exception("inference failed")
            return self._fail(f"Model inference failed: {type(exc).__name__}: {exc}", frame_id)
        self.stages.add(timer.stages)
        return protocol.assemble_actions_reply(packed_actions, self.inference_ms.last, obs.frame_id, timer.stages, rtc)

    def _decode_image(self, image) -> np.ndarray:
        if isinstance(image, protocol.RawImage):
            frame = images.raw_to_array(image, self._limits.max_image_side)
        else:
            frame = images.decode_jpeg(image, self._limits.max_image_side)
        return images.resize(frame, self.config.image_width, self.config.image_height)

    def _infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        output = run_batched(self.engine, batch)
        self.inference_ms.add((time.perf_counter() - start) * 1000.0)
        expected = (batch.batch_size, self.config.action_horizon, self.config.action_dim)
        if output.actions.shape != expected:
            raise RuntimeError(f"engine returned actions of shape {output.actions.shape}, expected {expected}")
        if not np.isfinite(output.actions).all():
            raise RuntimeError("engine returned non-finite actions")
        engine_stages = {f"engine_{k}": v for k, v in output.stages_ms.items() if k != "inference"}
        if engine_stages:
            self.stages.add(engine_stages)
        return output

    def _rtc_report(self, batch: ObservationBatch, output: EngineOutput, row: int) -> dict | None:
        """What real-time chunking did with row `row`'s prefix (None when it carried none), counted for status."""
        prefix = batch.prefixes[row] if row < len(batch.prefixes) else None
        if prefix is None:
            return None
        report = output.rtc[row] if row < len(output.rtc) and output.rtc[row] else {}
        if "applied" not in report:
            report = {"applied": False, "frozen_steps": 0, "overlap_steps": 0,
                      "reason": f"engine {self.engine.name} does not inpaint"}
        self.rtc_counts["requests_with_prefix"] += 1
        self.rtc_counts["applied"] += int(bool(report["applied"]))
        self.rtc_last = dict(report)
        return dict(report)

    def rtc_status(self) -> dict:
        """The status's "rtc" entry: whether the engine inpaints (and how), what requests asked and got."""
        described = self.engine.describe().get("rtc")
        facts = dict(described) if isinstance(described, dict) else {}
        return {**facts, "inpaints": bool(getattr(self.engine, "inpaints", False)), **self.rtc_counts,
                "last": self.rtc_last}

    def _check_token(self, token: str | None) -> None:
        if self._token and not hmac.compare_digest((token or "").encode(), self._token):
            raise PermissionError("unauthorized: missing or wrong api_token")

    def _fail(self, message: str, frame_id) -> bytes:
        return protocol.encode_error(self._record_error(message), frame_id)

    def _record_error(self, message: str) -> str:
        """Count and log a refused request; returns the (bounded) message for the reply."""
        self.errors += 1
        self.last_error = message[:500]
        log.warning("request refused: %s", self.last_error)
        return self.last_error

    # -- Isaac-GR00T protocol ------------------------------------------------------
    def _respond_gr00t(self, payload, fast: bool = False) -> bytes | None:
        """Answer in the generation the request came in (N1.7 if it held any msgpack-numpy envelope or
        bin key, N1.6 if it held __ndarray_class__ arrays); a request without arrays (ping,
        get_modality_config, reset) gets N1.6 arrays and ModalityConfig maps with both markers.
        With `fast` (not yet decoded generically), a request that fails to decode returns None: the
        generic path decodes it again, answers it in our protocol if it is not plain msgpack (like
        every undecodable message), and comes back here otherwise (a hook can fail before msgpack
        reaches a syntax error further on, so only the generic decode can tell)."""
        try:
            try:
                request, generation = gr00t_protocol.unpack_generation(payload, self._gr00t_limits)
            except gr00t_protocol.Gr00tProtocolError:
                if fast:
                    return None
                raise
            if not isinstance(request, dict):
                raise gr00t_protocol.Gr00tProtocolError("request must be a map")
            token = request.get("api_token")
            self._check_token(token if isinstance(token, str) else None)
            result = self._gr00t_endpoint(request.get("endpoint"), request.get("data"), generation)
            return gr00t_protocol.pack(result, generation or gr00t_protocol.N16)
        except (gr00t_protocol.Gr00tProtocolError, images.ImageError, PermissionError, ValueError) as exc:
            message = str(exc)
        except Exception as exc:
            log.exception("Isaac-GR00T request failed")
            message = f"{type(exc).__name__}: {exc}"
        return gr00t_protocol.pack({"error": self._record_error(message)})

    def _gr00t_endpoint(self, endpoint, data, generation: str | None = None):
        cfg = self.config
        if not isinstance(endpoint, str):
            raise gr00t_protocol.Gr00tProtocolError(f"'endpoint' must be a string, got {type(endpoint).__name__}")
        if endpoint == "ping":
            return {"status": "ok", "message": "Server is running", "engine": self.engine.name,
                    "rtc": bool(getattr(self.engine, "inpaints", False)), **self.latency_figure()}
        if endpoint == "get_modality_config":
            return gr00t_protocol.modality_config(cfg.video_keys, cfg.groups, cfg.language_key, cfg.action_horizon,
                                                  generation=generation)
        if endpoint == "reset":
            return {}
        if endpoint == "kill":
            if not cfg.allow_remote_kill:
                raise PermissionError("kill is disabled on this server (allow_remote_kill:=false)")
            self.kill_requested = True
            return {"status": "ok", "message": "Server shutting down"}
        if endpoint == "get_action":
            if not isinstance(data, dict) or not isinstance(data.get("observation"), dict):
                raise gr00t_protocol.Gr00tProtocolError("get_action needs data={'observation': {...}, 'options': ...}")
            timer = StageTimer()
            prefix = _gr00t_prefix(data.get("options"), cfg.action_horizon, cfg.action_dim)
            batch = gr00t_protocol.observation_batch(
                data["observation"], camera_names=cfg.camera_names, video_keys=cfg.video_keys, groups=cfg.groups,
                language_key=cfg.language_key, image_size=(cfg.image_width, cfg.image_height),
                limits=self._gr00t_limits)
            if prefix is not None and batch.batch_size == 1:
                batch = dataclasses.replace(batch, prefixes=(prefix,))
            timer.mark("preprocess")
            output = self._infer(batch)
            timer.mark("inference")
            self.stages.add(timer.stages)
            info = {"inference_time_ms": self.inference_ms.last, "engine": self.engine.name}
            rtc = self._rtc_report(batch, output, 0)
            if rtc is None and prefix is not None:
                rtc = {"applied": False, "frozen_steps": 0, "overlap_steps": 0,
                       "reason": f"an action_prefix applies to one observation; this request holds {batch.batch_size}"}
            if rtc is not None:
                info["rtc"] = rtc
            return [gr00t_protocol.action_dict(output.actions, cfg.groups), info]
        raise gr00t_protocol.Gr00tProtocolError(
            f"unknown endpoint {str(endpoint)[:80]!r}; known: ping, get_action, reset, get_modality_config, kill")

    # -- status ------------------------------------------------------------------
    def latency_figure(self) -> dict:
        """What a client may expect one request to take here, for its first timeout (client/latency.py):
        the p95 of the engine runs for requests served, else the slowest warm-up run; {} when neither exists."""
        if self.inference_ms.count:
            return {"inference_p95_ms": self.inference_ms.snapshot()["p95"]}
        if self.warmup_ms:
            return {"inference_p95_ms": round(max(self.warmup_ms), 3)}
        return {}

    def status(self) -> dict:
        inference = self.inference_ms.snapshot()
        request = self.request_ms.snapshot()
        return {
            "total_requests": self.total_requests,
            "average_inference_ms": inference["mean"],
            "last_inference_ms": inference["last"],
            "mock_mode": self.config.mock_mode,
            "tensorrt": self.engine.name == "tensorrt",
            "bind_address": self.config.address,
            "engine": self.engine.name,
            "inference_p50_ms": inference["p50"],
            "inference_p95_ms": inference["p95"],
            "inference_p99_ms": inference["p99"],
            "request_p50_ms": request["p50"],
            "request_p95_ms": request["p95"],
            "request_p99_ms": request["p99"],
            "requests_per_s": round(self.request_ms.rate(), 2),
            "errors": self.errors,
            "last_error": self.last_error,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "stages_ms": self.stages.summary(),
            "layout": self.layout(),
            **self.engine.describe(),
            "rtc": self.rtc_status(),
        }

    def layout(self) -> dict:
        """The layout served: language key (and all the checkpoint's, the first being the one read), video
        key per camera, groups with sizes (in order), and whether it came from the checkpoint (with the
        parameters it adopted) or the parameters."""
        cfg = self.config
        return {"source": self.layout_source, "language_key": cfg.language_key,
                "language_keys": list(self.layout_language_keys or (cfg.language_key,)),
                "video_keys": dict(zip(cfg.camera_names, cfg.video_keys)),
                "groups": {g.name: g.size for g in cfg.groups}, "adopted": list(self.layout_adopted)}

    def close(self) -> None:
        self._codec.close()


def describe_layout(served: dict) -> str:
    """The status's "layout" entry as one log line."""
    cams = ", ".join(cam if cam == key else f"{cam}<-{key}" for cam, key in served["video_keys"].items())
    groups = ", ".join(f"{name} {size}" for name, size in served["groups"].items())
    adopted = f"; adopted from the checkpoint: {', '.join(served['adopted'])}" if served["adopted"] else ""
    return (f"layout from the {served['source']}: language key '{served['language_key']}', cameras [{cams}], "
            f"groups [{groups}]{adopted}")


_ENDPOINT_KEY = b"\xa8endpoint"  # msgpack fixstr "endpoint"


def _starts_with_endpoint(payload) -> bool:
    """True when the message is a small map whose first key is "endpoint" (how upstream's PolicyClient
    builds every request): it can go straight to the Isaac-GR00T decoder. Anything else is decoded
    generically first and routed by its keys."""
    head = bytes(payload[:10])
    return len(head) == 10 and 0x80 <= head[0] <= 0x8F and head[1:] == _ENDPOINT_KEY


def _gr00t_prefix(options, horizon: int, dim: int):
    """Isaac-GR00T `options` may carry our real-time-chunking hint: {"action_prefix": (k, dim) array,
    "inference_delay": int}; anything else in options is left to the policy."""
    if not isinstance(options, dict) or options.get("action_prefix") is None:
        return None
    delay = options.get("inference_delay", 0)
    if isinstance(delay, np.ndarray) and delay.ndim == 0:
        delay = delay[()]
    if isinstance(delay, np.integer):  # a numpy scalar (N1.7's msgpack-numpy carries them)
        delay = int(delay)
    try:
        return protocol.parse_prefix(options["action_prefix"], delay, horizon, dim)
    except protocol.ProtocolError as exc:
        raise gr00t_protocol.Gr00tProtocolError(str(exc)) from None


def serve_pending(endpoint: RepEndpoint, service: PolicyService, wait_ms: int = 0, max_requests: int = 1000) -> int:
    """Answer every request already queued (waiting up to `wait_ms` for the first); returns how many."""
    served = 0
    payload = endpoint.receive(wait_ms)
    while payload is not None:
        parts = getattr(endpoint, "last_parts", 1)
        if parts > 1:
            reply = service.refuse(payload, f"multipart requests are not supported: got {parts} ZeroMQ frames, "
                                            "send the msgpack message as one frame")
        else:
            reply = service.respond(payload)
        endpoint.send(reply)
        served += 1
        if served >= max_requests or service.kill_requested:
            break
        payload = endpoint.receive(0)
    return served


class BackgroundServer:
    """The serving loop on its own thread: what groot_server runs inside its node, and what the tests,
    benchmarks and the bringup run without one.

    The thread owns the REP socket; `stop()` joins it and removes the socket file; `alive` says whether
    it still serves.
    """

    def __init__(self, service: PolicyService, address: str | None = None, ipc_mode: int = 0o660):
        import threading

        cfg = service.config
        self.service = service
        self.endpoint = RepEndpoint(address or cfg.address, cfg.max_message_bytes, ipc_mode, curve=cfg.curve_keys())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-server", daemon=True)

    def start(self) -> "BackgroundServer":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """The serving thread runs (False before start, after stop, and after a remote kill)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.service.kill_requested:
                serve_pending(self.endpoint, self.service, wait_ms=20)
        finally:
            self.endpoint.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
