"""The single I/O contract for single-graph policies (ONNX Runtime and TensorRT).

Any policy exported as one graph -- an ONNX file, or a TensorRT plan built from one --
is served by alfie_gr00t if its inputs and outputs follow this contract. Both backends
check it when they load (``check_contract``) and share the pure conversion code below,
so an ONNX file and the plan built from it behave the same.

Inputs (matched by name; ``B`` is the batch dimension, fixed or dynamic):

    <camera>          one per name in ``camera_names`` (default left_wide, right_wide,
                      left_center, right_center), either
                        uint8           (B, H, W, 3)  NHWC, RGB, 0..255, or
                        float32/float16 (B, 3, H, W)  NCHW, RGB, scaled to [0, 1]
    state             float32/float16/float64 (B, action_dim): the 21-D robot state
    language_tokens   optional, int64/int32 (B, L): token ids of the task text

Output: ``actions`` float32 / float16 / float64, (B, T, action_dim) with
T >= action_horizon; the first ``action_horizon`` steps are served. Other outputs are
allowed and ignored; any other input is an error (the server could not feed it).

Rules the loader applies:

* H, W default to 280 x 320 (``image_height`` x ``image_width``). Fixed spatial dims must
  equal them; dynamic ones are fed at that size.
* The image layout follows the declared dtype: uint8 means NHWC, a float dtype means
  NCHW in [0, 1]. The server always decodes to uint8 NHWC; the float conversion
  (transpose, divide by 255) happens in ``prepare_inputs``.
* Any dim may be dynamic (-1, ``None`` or a symbolic name). All fixed batch dims must
  agree. A graph with a fixed batch N serves up to N observations per call (smaller
  batches are padded by repeating the last observation, and the padding is dropped).
* ``language_tokens`` is optional. When present the task text is encoded by
  ``encode_text``, a tiny deterministic byte-level tokenizer: the UTF-8 bytes of the
  text as ids 1..255 (NUL characters dropped), truncated or right-padded with 0 (= pad)
  to L (a dynamic L is fed as ``DEFAULT_TOKEN_LENGTH``). It exists so a test graph can
  prove language reaches the model; real checkpoints should export their own tokenizer
  (or embed the text encoder in the graph) rather than rely on it.
* Actions must be finite; a NaN or Inf from the model is an ``EngineError``, never
  sent to the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alfie_gr00t.engines.base import EngineConfig, EngineError, ObservationBatch

STATE_INPUT = "state"
TOKENS_INPUT = "language_tokens"
ACTIONS_OUTPUT = "actions"
DYNAMIC = -1
DEFAULT_TOKEN_LENGTH = 64
DYNAMIC_MAX_BATCH = 64  # serve this many observations per call when the batch dim is dynamic

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64))
_INT_DTYPES = (np.dtype(np.int64), np.dtype(np.int32))
_CONTRACT_DOC = "see docs/checkpoint.md, 'The single-graph contract (ONNX and TensorRT)'"


@dataclass(frozen=True)
class TensorSpec:
    """One declared graph input or output: name, dims (-1 = dynamic) and numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @staticmethod
    def of(name: str, shape, dtype) -> "TensorSpec":
        """Normalise a backend's declaration: symbolic/None/negative dims become -1."""
        return TensorSpec(str(name), normalize_dims(shape), np.dtype(dtype))


@dataclass(frozen=True)
class ImageInput:
    """How one camera is fed: input name, 'nhwc' (uint8) or 'nchw' (float in [0,1])."""

    camera: str
    name: str
    layout: str
    dtype: np.dtype


@dataclass(frozen=True)
class ContractPlan:
    """The checked mapping from an ObservationBatch to graph feeds and back."""

    images: tuple[ImageInput, ...]
    state_dtype: np.dtype
    token_length: int | None  # None: the graph has no language_tokens input
    token_dtype: np.dtype | None
    output_dtype: np.dtype
    output_horizon: int  # -1 when dynamic
    fixed_batch: int | None  # None: dynamic batch dim
    image_height: int
    image_width: int
    action_dim: int

    @property
    def max_batch_size(self) -> int:
        return self.fixed_batch if self.fixed_batch else DYNAMIC_MAX_BATCH

    @property
    def input_names(self) -> tuple[str, ...]:
        names = [img.name for img in self.images] + [STATE_INPUT]
        if self.token_length is not None:
            names.append(TOKENS_INPUT)
        return tuple(names)

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Concrete shape of every input for `batch` observations (for TensorRT profiles)."""
        h, w = self.image_height, self.image_width
        shapes = {
            img.name: (batch, h, w, 3) if img.layout == "nhwc" else (batch, 3, h, w)
            for img in self.images
        }
        shapes[STATE_INPUT] = (batch, self.action_dim)
        if self.token_length is not None:
            shapes[TOKENS_INPUT] = (batch, self.token_length)
        return shapes

    def describe(self) -> dict:
        """A JSON-friendly summary for logs, status and `groot_build_engine --check`."""
        tokens = None if self.token_length is None else f"{self.token_length} x {self.token_dtype.name}"
        horizon = self.output_horizon if self.output_horizon > 0 else "T"
        return {
            "images": {img.camera: f"{img.name} {img.layout.upper()} {img.dtype.name}" for img in self.images},
            "state": self.state_dtype.name,
            "language_tokens": tokens,
            "actions": f"(B, {horizon}, {self.action_dim}) {self.output_dtype.name}",
            "batch": "dynamic" if self.fixed_batch is None else self.fixed_batch,
            "max_batch_size": self.max_batch_size,
        }


def normalize_dims(shape) -> tuple[int, ...]:
    """Map every non-concrete dim (None, a symbolic string, a negative int) to -1."""
    if shape is None:
        return ()
    out = []
    for dim in shape:
        out.append(int(dim) if isinstance(dim, (int, np.integer)) and int(dim) >= 0 else DYNAMIC)
    return tuple(out)


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("?" if d < 0 else str(d) for d in shape) + ")"


def _dims_match(declared: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Each expected dim (-1 = any) must equal the declared dim unless that one is dynamic."""
    if len(declared) != len(expected):
        return False
    return all(d < 0 or e < 0 or d == e for d, e in zip(declared, expected))


def _check_names(inputs: list[TensorSpec], outputs: list[TensorSpec], config: EngineConfig) -> None:
    expected = list(config.camera_names) + [STATE_INPUT]
    declared = [spec.name for spec in inputs]
    missing = [name for name in expected if name not in declared]
    extra = [name for name in declared if name not in expected and name != TOKENS_INPUT]
    problems = []
    if missing:
        problems.append(f"missing input(s) {missing}")
    if extra:
        problems.append(f"unexpected input(s) {extra}")
    if ACTIONS_OUTPUT not in [spec.name for spec in outputs]:
        problems.append(f"no output named '{ACTIONS_OUTPUT}' (outputs: {[s.name for s in outputs]})")
    if problems:
        raise EngineError(
            "model does not follow the alfie_gr00t single-graph contract: " + "; ".join(problems)
            + f". Expected inputs {expected} (+ optional '{TOKENS_INPUT}') and output "
            f"'{ACTIONS_OUTPUT}' ({_CONTRACT_DOC})"
        )


def _image_input(camera: str, spec: TensorSpec, config: EngineConfig) -> ImageInput:
    h, w = config.image_height, config.image_width
    if spec.dtype == np.uint8 and _dims_match(spec.shape, (-1, h, w, 3)):
        return ImageInput(camera, spec.name, "nhwc", spec.dtype)
    if spec.dtype in (np.dtype(np.float32), np.dtype(np.float16)) and _dims_match(spec.shape, (-1, 3, h, w)):
        return ImageInput(camera, spec.name, "nchw", spec.dtype)
    raise EngineError(
        f"input '{spec.name}' is {spec.dtype.name} {_fmt(spec.shape)}: a camera input must be "
        f"uint8 (B, {h}, {w}, 3) NHWC RGB or float32/float16 (B, 3, {h}, {w}) NCHW in [0, 1] "
        f"(image_height x image_width = {h} x {w}; {_CONTRACT_DOC})"
    )


def _check_state(spec: TensorSpec, config: EngineConfig) -> None:
    if spec.dtype not in _FLOAT_DTYPES or not _dims_match(spec.shape, (-1, config.action_dim)):
        raise EngineError(
            f"input '{STATE_INPUT}' is {spec.dtype.name} {_fmt(spec.shape)}: expected float32/float16/float64 "
            f"(B, {config.action_dim}) (action_dim = {config.action_dim}; {_CONTRACT_DOC})"
        )


def _token_length(spec: TensorSpec) -> int:
    if spec.dtype not in _INT_DTYPES or len(spec.shape) != 2 or spec.shape[1] == 0:
        raise EngineError(
            f"input '{TOKENS_INPUT}' is {spec.dtype.name} {_fmt(spec.shape)}: expected int64/int32 "
            f"(B, L) token ids ({_CONTRACT_DOC})"
        )
    return spec.shape[1] if spec.shape[1] > 0 else DEFAULT_TOKEN_LENGTH


def _output_horizon(spec: TensorSpec, config: EngineConfig) -> int:
    shape = spec.shape
    ok = spec.dtype in _FLOAT_DTYPES and len(shape) == 3
    ok = ok and (shape[2] < 0 or shape[2] == config.action_dim)
    ok = ok and (shape[1] < 0 or shape[1] >= config.action_horizon)
    if not ok:
        raise EngineError(
            f"output '{ACTIONS_OUTPUT}' is {spec.dtype.name} {_fmt(shape)}: expected float "
            f"(B, {config.action_horizon}, {config.action_dim}) -- at least action_horizon = "
            f"{config.action_horizon} steps of action_dim = {config.action_dim} ({_CONTRACT_DOC})"
        )
    return shape[1]


def _fixed_batch(specs: list[TensorSpec]) -> int | None:
    fixed = {spec.name: spec.shape[0] for spec in specs if spec.shape and spec.shape[0] > 0}
    sizes = set(fixed.values())
    if len(sizes) > 1:
        raise EngineError(f"inputs/outputs declare different fixed batch sizes {fixed}; use one size or a dynamic batch dim")
    if sizes == {0}:
        raise EngineError("a batch dim of 0 cannot serve observations")
    return sizes.pop() if sizes else None


def check_contract(inputs: list[TensorSpec], outputs: list[TensorSpec], config: EngineConfig) -> ContractPlan:
    """Check a graph's declared I/O against the contract; say exactly what is wrong if not."""
    _check_names(inputs, outputs, config)
    by_name = {spec.name: spec for spec in inputs}
    images = tuple(_image_input(cam, by_name[cam], config) for cam in config.camera_names)
    _check_state(by_name[STATE_INPUT], config)
    tokens = by_name.get(TOKENS_INPUT)
    token_length = _token_length(tokens) if tokens is not None else None
    out = next(spec for spec in outputs if spec.name == ACTIONS_OUTPUT)
    horizon = _output_horizon(out, config)
    used = [by_name[name] for name in by_name] + [out]
    return ContractPlan(
        images=images,
        state_dtype=by_name[STATE_INPUT].dtype,
        token_length=token_length,
        token_dtype=tokens.dtype if tokens is not None else None,
        output_dtype=out.dtype,
        output_horizon=horizon,
        fixed_batch=_fixed_batch(used),
        image_height=config.image_height,
        image_width=config.image_width,
        action_dim=config.action_dim,
    )


def encode_text(text: str, length: int) -> np.ndarray:
    """Byte-level token ids: UTF-8 bytes (1..255), truncated/right-padded with 0 to `length`."""
    data = text.replace("\x00", "").encode("utf-8")[:length]
    ids = np.zeros(length, dtype=np.int64)
    ids[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return ids


_FP16_UNIT = (np.arange(256) / 255.0).astype(np.float16)  # numpy's own float16 arithmetic is slow


def to_unit_nchw(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 (B, H, W, 3) -> (B, 3, H, W) float32/float16 in [0, 1]."""
    chw = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
    if np.dtype(dtype) == np.float16:
        return _FP16_UNIT[chw]
    out = chw.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out


def _pad_batch(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last row up to `size` rows (fixed-batch graphs)."""
    if array.shape[0] == size:
        return array
    pad = np.repeat(array[-1:], size - array.shape[0], axis=0)
    return np.concatenate([array, pad], axis=0)


def _camera_array(batch: ObservationBatch, camera: str, plan: ContractPlan) -> np.ndarray:
    if camera not in batch.images:
        raise EngineError(f"observation has no image for camera '{camera}' (got {sorted(batch.images)})")
    image = np.asarray(batch.images[camera])
    expected = (batch.batch_size, plan.image_height, plan.image_width, 3)
    if image.shape != expected or image.dtype != np.uint8:
        raise EngineError(
            f"camera '{camera}' image is {image.dtype.name} {image.shape}: the engine needs uint8 {expected} "
            "(the server resizes to image_width x image_height before inference)"
        )
    return image


def prepare_inputs(batch: ObservationBatch, plan: ContractPlan) -> dict[str, np.ndarray]:
    """Turn a decoded batch into the graph's feeds, in the graph's layouts and dtypes."""
    size = batch.batch_size
    if size < 1:
        raise EngineError("empty observation batch")
    target = plan.fixed_batch or size
    if size > target:
        raise EngineError(f"batch of {size} observations exceeds the model's fixed batch size {target}")
    feeds: dict[str, np.ndarray] = {}
    for img in plan.images:
        image = _camera_array(batch, img.camera, plan)
        if img.layout == "nchw":
            image = to_unit_nchw(image, img.dtype)
        feeds[img.name] = np.ascontiguousarray(_pad_batch(image, target))
    state = np.asarray(batch.state)
    if state.shape != (size, plan.action_dim):
        raise EngineError(f"state has shape {state.shape}, expected ({size}, {plan.action_dim})")
    feeds[STATE_INPUT] = np.ascontiguousarray(_pad_batch(state.astype(plan.state_dtype, copy=False), target))
    if plan.token_length is not None:
        if len(batch.language) != size:
            raise EngineError(f"{len(batch.language)} language strings for {size} observations")
        tokens = np.stack([encode_text(text, plan.token_length) for text in batch.language])
        feeds[TOKENS_INPUT] = _pad_batch(tokens.astype(plan.token_dtype, copy=False), target)
    return feeds


def read_actions(outputs: dict[str, np.ndarray], plan: ContractPlan, config: EngineConfig,
                 batch_size: int | None = None) -> np.ndarray:
    """Check the graph's `actions` and return (batch_size, horizon, dim) float32 chunks."""
    if ACTIONS_OUTPUT not in outputs:
        raise EngineError(f"engine returned no '{ACTIONS_OUTPUT}' output (got {sorted(outputs)})")
    actions = np.asarray(outputs[ACTIONS_OUTPUT])
    horizon, dim = config.action_horizon, config.action_dim
    if actions.ndim != 3 or actions.shape[1] < horizon or actions.shape[2] != dim:
        raise EngineError(f"model returned '{ACTIONS_OUTPUT}' of shape {actions.shape}, expected (B, {horizon}, {dim})")
    size = actions.shape[0] if batch_size is None else batch_size
    if actions.shape[0] < size:
        raise EngineError(f"model returned {actions.shape[0]} action chunks for {size} observations")
    chunk = actions[:size, :horizon].astype(np.float32)
    if not np.all(np.isfinite(chunk)):
        raise EngineError("model returned non-finite actions (NaN or Inf); refusing to serve them")
    return chunk
