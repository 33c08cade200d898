"""Triton Inference Server backend: the GPU work goes to a Triton pool over gRPC.

Each robot keeps its own groot_server (validation, JPEG decoding, both wire protocols);
this engine sends the decoded batch -- uint8 frames, state, task text -- to a Triton
model (`triton_repository/groot_policy` in this package) and returns its action chunks. Triton's
dynamic batcher joins the requests of many robots into one model execution.

Selected by `engine:=triton` (`triton_url`, `triton_model`, `triton_model_version`,
`triton_timeout_ms`) or by `model_checkpoint:=triton://host:port/model[/version]`.
At start it checks that the server is live and ready, that the model is ready, and that
the model's inputs and outputs match this server's cameras, image size, horizon and
action dim; any mismatch is an EngineError that names it. Every request has a deadline
(`triton_timeout_ms`); an unreachable or slow Triton is an EngineError (the server
answers with an error reply, the robot holds) and the next request reconnects.

`triton_url` may start with grpcs:// (TLS, system roots). A bearer token for an ingress
in front of Triton is read from $ALFIE_TRITON_TOKEN (kept out of ROS parameters and logs).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from alfie_gr00t.engines.base import (Engine, EngineConfig, EngineError, EngineOutput, ObservationBatch,
                                     stage_split)

log = logging.getLogger(__name__)

STATE_INPUT = "state"
LANGUAGE_INPUT = "language"
# Each observation's capture time and its real-time-chunking prefix travel too, with fixed shapes so
# Triton can batch requests: the prefix padded to the horizon, PREFIX_STEPS = [length, delay] (0 = none).
TIMESTAMP_INPUT = "timestamp"
PREFIX_INPUT = "prefix"
PREFIX_STEPS_INPUT = "prefix_steps"
ACTIONS_OUTPUT = "actions"
# Optional: per observation [applied, frozen_steps, overlap_steps] of real-time chunking (docs/rtc.md);
# a model repository written before it has no such output and its replies carry no report.
RTC_OUTPUT = "rtc"
TOKEN_ENV = "ALFIE_TRITON_TOKEN"
_DEFAULT_GRPC_PORT = 8001
_SETUP_TIMEOUT_S = 5.0
_RECONNECT_STATUSES = ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED", "StatusCode.UNKNOWN")


@dataclass(frozen=True)
class TritonTarget:
    """Where the model lives: gRPC host:port, TLS or not, model name and version ("" = Triton's choice)."""

    url: str
    model: str
    version: str = ""
    tls: bool = False

    def __str__(self) -> str:
        version = f" version {self.version}" if self.version else ""
        return f"model '{self.model}'{version} at {'grpcs://' if self.tls else ''}{self.url}"


def parse_target(config: EngineConfig) -> TritonTarget:
    """The target from `model_checkpoint` triton://host:port/model[/version], else the triton_* fields."""
    raw = config.model_checkpoint.strip()
    if raw.startswith("triton://"):
        parsed = urlparse(raw)
        parts = [p for p in parsed.path.split("/") if p]
        if not parsed.hostname or not parts or len(parts) > 2:
            raise EngineError(f"model_checkpoint {raw!r}: expected triton://host:port/model or "
                              "triton://host:port/model/version")
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return TritonTarget(f"{host}:{parsed.port or _DEFAULT_GRPC_PORT}", parts[0],
                            parts[1] if len(parts) == 2 else "")
    url, tls = config.triton_url.strip(), False
    for prefix, secure in (("grpcs://", True), ("grpc://", False)):
        if url.startswith(prefix):
            url, tls = url[len(prefix):], secure
    if not url or not config.triton_model.strip():
        raise EngineError("engine:=triton needs triton_url (host:port of Triton's gRPC endpoint) and triton_model")
    if ":" not in url.rsplit("]", 1)[-1]:
        url = f"{url}:{_DEFAULT_GRPC_PORT}"
    return TritonTarget(url, config.triton_model.strip(), str(config.triton_model_version).strip(), tls)


def import_tritonclient():
    """(tritonclient.grpc, InferenceServerException), or an EngineError saying what to install."""
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError as exc:
        raise EngineError(
            f"tritonclient is not installed ({exc}): pip install -r requirements-triton-client.txt "
            "(or `make triton-venv`), or choose another engine") from exc
    return grpcclient, InferenceServerException


def expected_io(config: EngineConfig) -> tuple[dict[str, tuple[str, list[int]]], tuple[str, list[int]]]:
    """What this groot_server feeds and reads: {input: (datatype, dims without batch)}, actions spec."""
    inputs = {name: ("UINT8", [config.image_height, config.image_width, 3]) for name in config.camera_names}
    inputs[STATE_INPUT] = ("FP32", [config.action_dim])
    inputs[LANGUAGE_INPUT] = ("BYTES", [1])
    inputs[TIMESTAMP_INPUT] = ("FP64", [1])
    inputs[PREFIX_INPUT] = ("FP32", [config.action_horizon, config.action_dim])
    inputs[PREFIX_STEPS_INPUT] = ("INT32", [2])
    return inputs, ("FP32", [config.action_horizon, config.action_dim])


def _dims(shape) -> list[int]:
    return [int(d) for d in shape]


def _dims_ok(declared: list[int], expected: list[int]) -> bool:
    return len(declared) == len(expected) and all(d < 0 or d == e for d, e in zip(declared, expected))


def check_metadata(metadata: dict, max_batch_size: int, config: EngineConfig, target: TritonTarget) -> list[str]:
    """Every way the model's declared I/O differs from what this server sends and expects."""
    want_inputs, (want_out_type, want_out_dims) = expected_io(config)
    batch = [-1] if max_batch_size > 0 else []
    problems = []
    declared = {spec["name"]: spec for spec in metadata.get("inputs", [])}
    for name, (dtype, dims) in want_inputs.items():
        spec = declared.get(name)
        what = "camera" if name in config.camera_names else name
        if spec is None:
            problems.append(f"missing input '{name}' ({what}; the model declares {sorted(declared)})")
            continue
        got = _dims(spec.get("shape", []))
        if spec.get("datatype") != dtype or not _dims_ok(got, batch + dims):
            problems.append(f"input '{name}' is {spec.get('datatype')} {got}, expected {dtype} {batch + dims}"
                            + (f" (image_height x image_width = {config.image_height} x {config.image_width})"
                               if name in config.camera_names else ""))
    extra = sorted(set(declared) - set(want_inputs))
    if extra:
        problems.append(f"model needs input(s) {extra} that groot_server does not send (camera_names: "
                        f"{list(config.camera_names)})")
    outputs = {spec["name"]: spec for spec in metadata.get("outputs", [])}
    out = outputs.get(ACTIONS_OUTPUT)
    if out is None:
        problems.append(f"no output '{ACTIONS_OUTPUT}' (outputs: {sorted(outputs)})")
    else:
        got = _dims(out.get("shape", []))
        if out.get("datatype") != want_out_type or not _dims_ok(got, batch + want_out_dims):
            problems.append(f"output '{ACTIONS_OUTPUT}' is {out.get('datatype')} {got}, expected {want_out_type} "
                            f"{batch + want_out_dims} (action_horizon={config.action_horizon}, "
                            f"action_dim={config.action_dim})")
    rtc = outputs.get(RTC_OUTPUT)
    if rtc is not None and (rtc.get("datatype") != "INT32" or not _dims_ok(_dims(rtc.get("shape", [])), batch + [3])):
        problems.append(f"output '{RTC_OUTPUT}' is {rtc.get('datatype')} {_dims(rtc.get('shape', []))}, expected "
                        f"INT32 {batch + [3]} ([applied, frozen_steps, overlap_steps] per observation)")
    if max_batch_size < 1:
        problems.append("max_batch_size is 0: the model must batch (max_batch_size >= 1 in config.pbtxt)")
    return problems


def model_inpaints(model_config: dict) -> bool:
    """Whether the Triton model's engine honours a prefix, from its config.pbtxt parameters (the engine it
    wraps, rtc, mock_policy) and its declared outputs (it reports per observation only with the rtc output)."""
    params = {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}
    if not any(o.get("name") == RTC_OUTPUT for o in model_config.get("output", [])):
        return False
    if params.get("rtc", "true").strip().lower() in ("false", "0", "no", "off"):
        return False
    kind = params.get("engine", "mock").strip() or "mock"
    return kind == "gr00t" or (kind == "mock" and params.get("mock_policy", "hold") == "trajectory")


class TritonEngine(Engine):
    name = "triton"

    def __init__(self, config: EngineConfig):
        self._grpc, self._exc_type = import_tritonclient()
        self._config = config
        self.target = parse_target(config)
        self._timeout_s = max(0.001, config.triton_timeout_ms / 1000.0)
        token = os.environ.get(TOKEN_ENV, "")
        self._headers = {"authorization": f"Bearer {token}"} if token else None
        self._client = None
        self.failures = 0
        client = self._connect()
        self._check_server(client)
        self.max_batch_size, self.server_version, self.inpaints, self._reports = self._check_model(client)
        log.info("Triton engine: %s (Triton %s), max_batch_size %d, timeout %.0f ms", self.target,
                 self.server_version, self.max_batch_size, config.triton_timeout_ms)

    # -- connection ---------------------------------------------------------------
    def _connect(self):
        if self._client is None:
            args = [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1),
                    ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000)]
            try:
                self._client = self._grpc.InferenceServerClient(self.target.url, ssl=self.target.tls,
                                                                channel_args=args)
            except Exception as exc:
                raise EngineError(f"cannot create a Triton gRPC client for {self.target}: {exc}") from exc
        return self._client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken channel may fail to close; it is dropped either way
                pass

    def _call(self, what: str, fn, *args, **kwargs):
        """A setup call with a deadline; Triton errors become an EngineError naming `what`."""
        try:
            return fn(*args, headers=self._headers, client_timeout=_SETUP_TIMEOUT_S, **kwargs)
        except self._exc_type as exc:
            raise EngineError(f"Triton {what} failed for {self.target}: {exc.message() or exc} "
                              f"({exc.status() or 'no status'}). Is tritonserver running there? "
                              "(`groot_triton` starts one; docs/triton.md)") from exc

    def _check_server(self, client) -> None:
        if not self._call("liveness check", client.is_server_live):
            raise EngineError(f"Triton at {self.target.url} is not live")
        if not self._call("readiness check", client.is_server_ready):  # our model may still be fine: checked next
            log.warning("Triton at %s is live but not ready (a model failed to load or is loading)", self.target.url)

    def _check_model(self, client) -> tuple[int, str, bool, bool]:
        target = self.target
        if not self._call("model readiness check", client.is_model_ready, target.model, target.version):
            index = self._call("repository index", client.get_model_repository_index, as_json=True)
            models = index.get("models", [])
            mine = [m for m in models if m.get("name") == target.model]
            if not mine:
                raise EngineError(f"Triton at {target.url} has no model '{target.model}' (its repository holds "
                                  f"{sorted({m.get('name') for m in models})}); set triton_model")
            states = "; ".join(f"version {m.get('version', '?')}: {m.get('state', '?')}"
                               + (f" ({m['reason']})" if m.get("reason") else "") for m in mine)
            raise EngineError(f"{target} is not ready: {states}")
        metadata = self._call("model metadata", client.get_model_metadata, target.model, target.version,
                              as_json=True)
        model_config = self._call("model config", client.get_model_config, target.model, target.version,
                                  as_json=True).get("config", {})
        max_batch = int(model_config.get("max_batch_size", 0))
        problems = check_metadata(metadata, max_batch, self._config, target)
        if problems:
            raise EngineError(f"{target} does not match this groot_server's parameters: " + "; ".join(problems))
        server = self._call("server metadata", client.get_server_metadata, as_json=True)
        reports = any(o.get("name") == RTC_OUTPUT for o in metadata.get("outputs", []))
        return max_batch, str(server.get("version", "?")), model_inpaints(model_config), reports

    # -- inference --------------------------------------------------------------------
    def _inputs(self, batch: ObservationBatch) -> list:
        grpc, cfg = self._grpc, self._config
        size = batch.batch_size
        inputs = []
        for name in cfg.camera_names:
            if name not in batch.images:
                raise EngineError(f"observation has no image for camera '{name}' (got {sorted(batch.images)})")
            image = np.ascontiguousarray(batch.images[name], dtype=np.uint8)
            tensor = grpc.InferInput(name, list(image.shape), "UINT8")
            tensor.set_data_from_numpy(image)
            inputs.append(tensor)
        state = np.ascontiguousarray(batch.state, dtype=np.float32).reshape(size, cfg.action_dim)
        tensor = grpc.InferInput(STATE_INPUT, list(state.shape), "FP32")
        tensor.set_data_from_numpy(state)
        inputs.append(tensor)
        text = np.array([[t.encode("utf-8")] for t in batch.language], dtype=np.object_).reshape(size, 1)
        tensor = grpc.InferInput(LANGUAGE_INPUT, [size, 1], "BYTES")
        tensor.set_data_from_numpy(text)
        inputs.append(tensor)
        stamps = np.array([[batch.timestamps[b] if b < len(batch.timestamps) else time.time()]
                           for b in range(size)], dtype=np.float64)
        prefix = np.zeros((size, cfg.action_horizon, cfg.action_dim), dtype=np.float32)
        steps = np.zeros((size, 2), dtype=np.int32)
        for b, hint in enumerate(batch.prefixes[:size]):
            if hint is not None:
                length = min(len(hint.actions), cfg.action_horizon)
                prefix[b, :length] = hint.actions[:length]
                steps[b] = (length, min(int(hint.delay_steps), length))
        for name, array, dtype in ((TIMESTAMP_INPUT, stamps, "FP64"), (PREFIX_INPUT, prefix, "FP32"),
                                   (PREFIX_STEPS_INPUT, steps, "INT32")):
            tensor = grpc.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        inputs = self._inputs(batch)
        outputs = [self._grpc.InferRequestedOutput(name) for name in
                   ((ACTIONS_OUTPUT, RTC_OUTPUT) if self._reports else (ACTIONS_OUTPUT,))]
        prepared = time.perf_counter()
        try:
            result = self._connect().infer(self.target.model, inputs, model_version=self.target.version,
                                           outputs=outputs, client_timeout=self._timeout_s, headers=self._headers)
        except self._exc_type as exc:
            self.failures += 1
            status = str(exc.status() or "")
            if status in _RECONNECT_STATUSES or status == "StatusCode.DEADLINE_EXCEEDED":
                self._drop_client()  # a fresh channel on the next request: Triton may be back by then
            if status == "StatusCode.DEADLINE_EXCEEDED":
                raise EngineError(f"Triton {self.target} did not answer within triton_timeout_ms="
                                  f"{self._config.triton_timeout_ms:g}") from exc
            if status == "StatusCode.UNAVAILABLE":
                raise EngineError(f"Triton {self.target} is unreachable ({exc.message()}); the robot holds "
                                  "until it is back") from exc
            raise EngineError(f"Triton inference failed for {self.target}: {exc.message() or exc} ({status})") from exc
        ran = time.perf_counter()
        actions = result.as_numpy(ACTIONS_OUTPUT)
        cfg = self._config
        expected = (batch.batch_size, cfg.action_horizon, cfg.action_dim)
        if actions is None or actions.shape != expected:
            raise EngineError(f"Triton returned '{ACTIONS_OUTPUT}' of shape "
                              f"{None if actions is None else actions.shape}, expected {expected}")
        chunk = np.asarray(actions, dtype=np.float32)
        if not np.all(np.isfinite(chunk)):
            raise EngineError("Triton model returned non-finite actions (NaN or Inf); refusing to serve them")
        stages = stage_split(start, prepared, ran, time.perf_counter())
        return EngineOutput(chunk, stages, self._rtc_rows(result, batch))

    def _rtc_rows(self, result, batch: ObservationBatch) -> tuple:
        """Each observation's real-time-chunking report from the model's rtc output; () without one."""
        rows = result.as_numpy(RTC_OUTPUT) if self._reports else None
        if rows is None or rows.shape != (batch.batch_size, 3):
            return ()
        return tuple({"applied": bool(a), "frozen_steps": int(f), "overlap_steps": int(o)} for a, f, o in rows)

    def close(self) -> None:
        self._drop_client()

    def describe(self) -> dict:
        return {"backend": "triton", "tensorrt": False, "rtc": {"inpaints": self.inpaints, "reported": self._reports},
                "triton_url": self.target.url, "tls": self.target.tls,
                "triton_model": self.target.model, "triton_model_version": self.target.version or "default",
                "triton_server_version": self.server_version, "max_batch_size": self.max_batch_size,
                "timeout_ms": self._config.triton_timeout_ms, "failures": self.failures}
